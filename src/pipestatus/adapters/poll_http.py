"""The provider APIs a poll reads (README, "Pollers"): one small client per provider.

Each client answers ``listed()`` (every resource its list endpoint returns now) and
``one(run_id)`` (the single resource, ``None`` once the API no longer knows it). Responses
become ``Polled`` values carrying the JSON exactly as returned. A 429 is waited out for its
``Retry-After`` (bounded) and retried twice; any other failure is a ``ProviderPollError``
with a bounded reason label, for the caller's backoff and metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, NoReturn, Protocol

import httpx
from pydantic import SecretStr

from pipestatus.domain.states import Provider
from pipestatus.edge.polling import Known, Listing, Polled, polled
from pipestatus.errors import ConfigError, ProviderPollError
from pipestatus.settings import PollSourceSettings

logger = logging.getLogger(__name__)

#: Retries of one request after a 429, each after the provider's ``Retry-After``.
RATE_LIMIT_RETRIES = 2


class PollApi(Protocol):
    async def listed(self, known: Mapping[str, Known]) -> Listing: ...

    async def one(self, run_id: str, locator: str | None) -> Polled | None: ...


class Http:
    """GETs with the source's auth, mapping every failure onto a reason label."""

    def __init__(self, client: httpx.AsyncClient, source: PollSourceSettings, max_wait_s: float):
        self.client = client
        self.source = source
        self._max_wait_s = max_wait_s

    def fail(self, reason: str, detail: str, retry_after_s: float | None = None) -> NoReturn:
        raise ProviderPollError(self.source.name, reason, detail, retry_after_s)

    async def send(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = await self.client.send(request)
            except httpx.TimeoutException as exc:
                raise ProviderPollError(self.source.name, "timeout", repr(exc)) from exc
            except httpx.TransportError as exc:
                raise ProviderPollError(self.source.name, "unreachable", repr(exc)) from exc
            if response.status_code != 429:
                return response
            wait = retry_after(response)
            if attempt == RATE_LIMIT_RETRIES or wait is None or wait > self._max_wait_s:
                break
            logger.info("poll source %s: 429, retrying after %gs", self.source.name, wait)
            await asyncio.sleep(wait)
        raise ProviderPollError(
            self.source.name, "rate_limited", f"429 on {request.url.path}", retry_after(response)
        )

    def json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code in (401, 403):
            self.fail("auth", f"{response.status_code} on {response.request.url.path}")
        if not response.is_success:
            self.fail(f"http_{response.status_code}", f"on {response.request.url.path}")
        try:
            document = response.json()
        except ValueError as exc:
            raise ProviderPollError(self.source.name, "bad_response", str(exc)) from exc
        if not isinstance(document, dict):
            self.fail("bad_response", f"{response.request.url.path}: not a JSON object")
        return document


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by these providers)."""
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)


class KrenalisApi:
    """``GET /v1/pipelines/runs`` (every run, no paging) and ``/v1/pipelines/runs/{id}``."""

    def __init__(self, http: Http) -> None:
        self._http = http
        source = http.source
        key = secret(source.api_key, source, "api_key")
        self._headers = {"Authorization": f"Bearer {key}"}
        if source.workspace:
            self._headers["Krenalis-Workspace"] = source.workspace

    async def listed(self, known: Mapping[str, Known]) -> Listing:
        request = self._http.client.build_request(
            "GET", "/v1/pipelines/runs", headers=self._headers
        )
        document = self._http.json(await self._http.send(request))
        runs = document.get("runs")
        if not isinstance(runs, list):
            self._http.fail("bad_response", "GET /v1/pipelines/runs: no `runs` list")
        return Listing(items(Provider.krenalis, runs))

    async def one(self, run_id: str, locator: str | None = None) -> Polled | None:
        request = self._http.client.build_request(
            "GET", f"/v1/pipelines/runs/{run_id}", headers=self._headers
        )
        response = await self._http.send(request)
        if response.status_code == 404:
            return None
        self._http.json(response)
        return single(Provider.krenalis, response)


class NuvoApi:
    """License key → access token (cached until refused), read-all pages, read by id."""

    def __init__(self, http: Http) -> None:
        self._http = http
        self._token: str | None = None

    async def _authorized(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for fresh in (False, True):
            if self._token is None or fresh:
                self._token = await self._access_token()
            request = self._http.client.build_request(
                method, path, headers={"access_token": self._token}, **kwargs
            )
            response = await self._http.send(request)
            if response.status_code != 401:
                return response
        return response

    async def _access_token(self) -> str:
        source = self._http.source
        body: dict[str, Any] = {"license_key": secret(source.license_key, source, "license_key")}
        if source.auth_identifier:
            body["auth"] = {"identifier": source.auth_identifier, "type": source.auth_type}
        request = self._http.client.build_request("POST", "/auth/access-token", json=body)
        document = self._http.json(await self._http.send(request))
        # The documentation names the field, not its envelope: bare or under `data`.
        data = document.get("data")
        holder = data if isinstance(data, dict) else document
        token = holder.get("access_token")
        if not isinstance(token, str) or not token:
            self._http.fail("auth", "POST /auth/access-token: no access_token")
        return str(token)

    async def listed(self, known: Mapping[str, Known]) -> Listing:
        found: list[Polled] = []
        source = self._http.source
        offset = 0
        for _page in range(source.max_pages):
            paging = json.dumps({"offset": offset, "limit": source.page_size})
            response = await self._authorized("GET", "/execution/", params={"pagination": paging})
            document = self._http.json(response)
            data = document.get("data")
            if not isinstance(data, list):
                self._http.fail("bad_response", "GET /execution/: no `data` list")
            found.extend(items(Provider.nuvo, data))
            # `pagination.total` is documented as the entries in `data`, not of all pages:
            # a short page is the last one.
            offset += len(data)
            if len(data) < source.page_size:
                break
        return Listing(found)

    async def one(self, run_id: str, locator: str | None = None) -> Polled | None:
        response = await self._authorized("GET", f"/execution/{run_id}")
        if response.status_code == 404:
            return None
        self._http.json(response)
        return single(Provider.nuvo, response)


def secret(value: SecretStr | None, source: PollSourceSettings, name: str) -> str:
    if value is None:  # the settings validator requires it; never reached from the CLI
        raise ConfigError(f"poll source {source.name!r} needs {name}")
    return value.get_secret_value()


def items(provider: Provider, items: list[Any]) -> list[Polled]:
    found = [polled(provider, item) for item in items if isinstance(item, dict)]
    return [item for item in found if item is not None]


def single(provider: Provider, response: httpx.Response) -> Polled | None:
    return polled(provider, response.json(), response.content)
