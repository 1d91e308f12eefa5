"""Zoho DataPrep: OAuth2 refresh-token flow, then the Job Summary of each watched job.

Zoho documents neither the paths of its job list nor of the Job Summary, so both are URL
templates of the source (``job_url`` with ``{job_id}``, optional ``jobs_url`` with
``{pipeline_id}`` whose ``jobs_field`` lists jobs by ``id``). The job id is taken to be
the ``pipelinerun.id`` the summary reports (the run id). The access token comes from
``POST {accounts_url}/oauth/v2/token`` (``grant_type=refresh_token``) and is cached until
a minute before ``expires_in``: Zoho allows ten token requests per ten minutes per
refresh token. A 401 with a cached token (revoked) requests one new token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx

from pipestatus.adapters.poll_http import Http, secret, single
from pipestatus.domain.states import Provider
from pipestatus.edge.polling import Known, Listing, Polled

#: A token is renewed this long before Zoho says it expires.
EXPIRY_MARGIN_S = 60.0


class ZohoApi:
    def __init__(self, http: Http) -> None:
        self._http = http
        self._token: str | None = None
        self._expires_at = 0.0
        self.token_requests = 0

    async def _access_token(self) -> str:
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        source = self._http.source
        form = {
            "grant_type": "refresh_token",
            "client_id": source.client_id or "",
            "client_secret": secret(source.client_secret, source, "client_secret"),
            "refresh_token": secret(source.refresh_token, source, "refresh_token"),
        }
        url = f"{(source.accounts_url or '').rstrip('/')}/oauth/v2/token"
        request = self._http.client.build_request("POST", url, data=form)
        self.token_requests += 1
        document = self._http.json(await self._http.send(request))
        token, expires_in = document.get("access_token"), document.get("expires_in", 3600)
        if not isinstance(token, str) or not token:
            # Zoho answers 200 with {"error": "invalid_code"} for a bad refresh token.
            self._http.fail("auth", f"token request refused: {document.get('error', 'no token')}")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        self._token, self._expires_at = token, time.monotonic() + lifetime - EXPIRY_MARGIN_S
        return token

    async def _get(self, url: str) -> httpx.Response:
        for renewed in (False, True):
            if renewed:
                self._token = None
            token = await self._access_token()
            request = self._http.client.build_request(
                "GET", url, headers={"Authorization": f"Zoho-oauthtoken {token}"}
            )
            response = await self._http.send(request)
            if response.status_code != 401:
                return response
        return response

    async def _watched(self) -> set[str]:
        source = self._http.source
        jobs = set(source.job_ids)
        if source.jobs_url is None:
            return jobs
        for pipeline_id in source.pipeline_ids:
            document = self._http.json(
                await self._get(source.jobs_url.format(pipeline_id=pipeline_id))
            )
            listed = document.get(source.jobs_field or "")
            if not isinstance(listed, list):
                self._http.fail("bad_response", f"job list has no `{source.jobs_field}` list")
            jobs.update(str(job["id"]) for job in listed if isinstance(job, dict) and "id" in job)
        return jobs

    async def listed(self, known: Mapping[str, Known]) -> Listing:
        """Summaries of watched jobs never published; known ones are read by id while live."""
        watched = await self._watched()
        found = [await self.one(job_id) for job_id in sorted(watched - known.keys())]
        return Listing([p for p in found if p is not None], frozenset(watched))

    async def one(self, run_id: str, locator: str | None = None) -> Polled | None:
        response = await self._get((self._http.source.job_url or "").format(job_id=run_id))
        if response.status_code == 404:
            return None
        status = self._http.json(response).get("response_status")
        code = status.get("status_code") if isinstance(status, dict) else None
        if isinstance(code, int) and code >= 4000:
            # An API error report, not a run: fail the round rather than forget the job.
            self._http.fail("api_error", f"Job Summary of {run_id}: status_code {code}")
        return single(Provider.zoho_dataprep, response)
