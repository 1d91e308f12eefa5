"""Codat: companies, then each company's pull-operation history (README, "Pollers").

``GET /companies`` (or the configured ``company_ids``), then
``GET /companies/{id}/data/history?page&pageSize&orderBy=-requested[&query]`` up to
``max_pages`` pages per company, and ``GET /companies/{id}/data/history/{datasetId}`` for
a live pull operation beyond them. Auth: ``Authorization: Basic <base64 of the API key>``.
Codat's daily quota: when ``X-Rate-Limit-Remaining`` falls to ``quota_reserve`` the round
stops, to resume once ``X-Rate-Limit-Reset`` has passed (00:00 UTC if it cannot be read).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pipestatus.adapters.poll_http import Http, items, secret, single
from pipestatus.domain.states import Provider
from pipestatus.edge.polling import Known, Listing, Polled


class CodatApi:
    def __init__(self, http: Http) -> None:
        self._http = http
        key = secret(http.source.api_key, http.source, "api_key")
        self._headers = {"Authorization": "Basic " + base64.b64encode(key.encode()).decode()}

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        request = self._http.client.build_request("GET", path, params=params, headers=self._headers)
        response = await self._http.send(request)
        self._check_quota(response)
        return response

    def _check_quota(self, response: httpx.Response) -> None:
        try:
            remaining = int(response.headers.get("x-rate-limit-remaining", ""))
        except ValueError:
            return
        if remaining <= self._http.source.quota_reserve:
            wait = until_reset(response.headers.get("x-rate-limit-reset", ""), datetime.now(UTC))
            self._http.fail("quota", f"{remaining} requests left today", wait)

    async def _pages(self, path: str, extra: dict[str, Any]) -> list[Any]:
        source = self._http.source
        found: list[Any] = []
        for page in range(1, source.max_pages + 1):
            params = {"page": page, "pageSize": source.page_size, **extra}
            document = self._http.json(await self._get(path, params))
            results = document.get("results")
            if not isinstance(results, list):
                self._http.fail("bad_response", f"GET {path}: no `results` list")
            found.extend(results)
            total = document.get("totalResults")
            if not isinstance(total, int) or page * source.page_size >= total:
                break
        return found

    async def _companies(self) -> list[str]:
        configured = self._http.source.company_ids
        if configured:
            return list(configured)
        companies = await self._pages("/companies", {})
        return [c["id"] for c in companies if isinstance(c, dict) and isinstance(c.get("id"), str)]

    async def listed(self, known: Mapping[str, Known]) -> Listing:
        extra: dict[str, Any] = {"orderBy": "-requested"}
        if self._http.source.query:
            extra["query"] = self._http.source.query
        found: list[Polled] = []
        for company in await self._companies():
            operations = await self._pages(f"/companies/{company}/data/history", extra)
            found.extend(items(Provider.codat, operations))
        return Listing(found)

    async def one(self, run_id: str, locator: str | None = None) -> Polled | None:
        if locator is None:
            return None  # a pull operation is always read with its company
        response = await self._get(f"/companies/{locator}/data/history/{run_id}")
        if response.status_code == 404:
            return None
        self._http.json(response)
        return single(Provider.codat, response)


def until_reset(header: str, now: datetime) -> float:
    """Seconds until the quota resets: an RFC 3339 time, else the next 00:00 UTC."""
    try:
        moment = datetime.fromisoformat(header.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        moment = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max((moment - now).total_seconds(), 1.0)
