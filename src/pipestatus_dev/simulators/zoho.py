"""Zoho DataPrep: the accounts server's token endpoint and Job Summaries (providers.md §1).

``POST /oauth/v2/token`` (form ``grant_type=refresh_token``, client id and secret, refresh
token) returns ``{"access_token", "expires_in", "token_type"}``; more than ten in ten
minutes is refused as Zoho does. The API paths are this simulator's own
(``/dataprep/v1/pipelines/{id}/jobs`` listing ``{"jobs": [{"id"}]}``, and
``/dataprep/v1/jobs/{id}/summary``): Zoho does not document them, so tests configure
them as the source's URL templates. ``Authorization: Zoho-oauthtoken <token>`` is
required; an expired or revoked token is 401.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipestatus_dev.simulators.base import Simulator, not_found, unauthorized

JOBS_URL = "/dataprep/v1/pipelines/{pipeline_id}/jobs"
JOB_URL = "/dataprep/v1/jobs/{job_id}/summary"
_OK = {
    "status": "success",
    "status_code": 2000,
    "messages": [{"type": "success", "status_code": 2000}],
}
#: execution_status codes: 2 created, 0 running, 1 success, -1 failure.
CREATED, RUNNING, SUCCESS, FAILURE = 2, 0, 1, -1


@dataclass
class ZohoSimulator(Simulator):
    client_id: str = "1000.SIMULATED"
    client_secret: str = "zoho_client_secret"  # noqa: S105  # a simulator's test value
    refresh_token: str = "1000.refresh.simulated"  # noqa: S105  # a test value
    expires_in_s: int = 3600
    tokens: dict[str, float] = field(default_factory=dict)
    token_requests: list[float] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipelines: dict[str, list[str]] = field(default_factory=dict)
    #: Job ids whose summary answers an API error report (HTTP 200, status_code 4000+).
    failing: set[str] = field(default_factory=set)
    _time_ms: int = 1767261600000

    def start(self, pipeline_id: str = "2650000000418005") -> str:
        self._time_ms += 1000
        job_id = str(2650000001230000 + len(self.jobs) + 1)
        self.jobs[job_id] = {
            "id": job_id, "execution_status": CREATED, "type": 5,
            "created_time": self._time_ms, "modified_time": self._time_ms,
            "pipeline": {"id": pipeline_id}, "pipelinetaskinstances": [],
        }  # fmt: skip
        self.pipelines.setdefault(pipeline_id, []).append(job_id)
        return job_id

    def move(self, job_id: str, execution_status: int) -> None:
        self._time_ms += 30_000
        job = self.jobs[job_id]
        job.update(execution_status=execution_status, modified_time=self._time_ms)
        if execution_status in (SUCCESS, FAILURE):
            job["completion_time"] = self._time_ms

    def evolve(self) -> None:
        for job_id, job in list(self.jobs.items()):
            step = {CREATED: RUNNING, RUNNING: SUCCESS}.get(job["execution_status"])
            if step is not None:
                self.move(job_id, step)
        self.start()

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/oauth/v2/token", self._token, methods=["POST"]),
                Route(JOBS_URL, self._list),
                Route(JOB_URL, self._summary),
            ]
        )

    async def _token(self, request: Request) -> Response:
        # parsed by hand: Starlette's form parser needs python-multipart, not a dependency
        form = dict(parse_qsl((await request.body()).decode()))
        now = time.monotonic()
        recent = [t for t in self.token_requests if now - t < 600]
        if len(recent) >= 10:
            return JSONResponse(
                {"error": "Access Denied", "error_description": "too many requests"},
                status_code=400,
            )
        self.token_requests.append(now)
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
            or form.get("refresh_token") != self.refresh_token
        ):
            return JSONResponse({"error": "invalid_code"})  # Zoho answers 200
        token = f"1000.{secrets.token_hex(16)}"
        self.tokens[token] = now + self.expires_in_s
        return JSONResponse(
            {"access_token": token, "expires_in": self.expires_in_s, "token_type": "Bearer"}
        )

    async def _refused(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Zoho-oauthtoken ")
        if (
            not header.startswith("Zoho-oauthtoken ")
            or self.tokens.get(token, 0) < time.monotonic()
        ):
            return unauthorized("INVALID_OAUTHTOKEN")
        return await self.admit(request)

    async def _list(self, request: Request) -> Response:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        ids = self.pipelines.get(request.path_params["pipeline_id"], [])
        return JSONResponse({"jobs": [{"id": job_id} for job_id in ids], "response_status": _OK})

    async def _summary(self, request: Request) -> Response:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return not_found("job does not exist")
        if job["id"] in self.failing:
            error = {"status": "failure", "status_code": 4001,
                     "messages": [{"type": "error", "status_code": 4001}]}  # fmt: skip
            return JSONResponse({"response_status": error})
        return JSONResponse({"pipelinerun": job, "response_status": _OK})
