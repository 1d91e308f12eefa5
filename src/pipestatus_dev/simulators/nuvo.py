"""nuvo Data Pipelines: access token, read-all executions, read by id (seed 004).

``POST /auth/access-token`` with the license key returns ``{"data": {"access_token"}}``;
every other request needs it in the ``access_token`` header (401 without, or once
``expire_tokens()`` ran). ``GET /execution/`` takes a stringified ``pagination``
(``{"offset", "limit"}``) and lists newest first (``pagination.total`` is, as
documented, the number of entries in ``data``); ``GET /execution/{id}`` wraps the
execution in ``{"data": {...}}``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipestatus_dev.simulators.base import Simulator, not_found, unauthorized


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@dataclass
class NuvoSimulator(Simulator):
    license_key: str = "license_simulated"
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    clock: datetime = field(default_factory=lambda: datetime(2026, 7, 14, 9, 0, tzinfo=UTC))

    def start(self, pipeline: str = "6690e8d0a7b4e90012ab1200") -> str:
        self.clock += timedelta(seconds=1)
        execution_id = secrets.token_hex(12)
        now = _time(self.clock)
        self.executions[execution_id] = {
            "id": execution_id, "pipeline": pipeline, "status": "PROCESSING",
            "trigger_type": "SCHEDULED", "created_at": now, "updated_at": now,
            "logs": [{"type": "CREATE", "status": "PROCESSING"}],
        }  # fmt: skip
        return execution_id

    def finish(self, execution_id: str, *, failed: bool = False, rows: int = 100) -> None:
        self.clock += timedelta(seconds=30)
        execution = self.executions[execution_id]
        status = "FAILED" if failed else "SUCCESSFUL"
        execution.update(status=status, updated_at=_time(self.clock))
        execution["logs"][-1].update(
            status=status, data={"total_rows": rows, "total_error_rows": 0}
        )
        if failed:
            execution["error"] = {"type": "PARSING_FAILURE", "message": "row 3: bad quote"}

    def fix(self, execution_id: str) -> None:
        """A FIX after a failure: a new log entry, processing again (a new attempt)."""
        self.clock += timedelta(seconds=1)
        execution = self.executions[execution_id]
        execution.pop("error", None)
        execution.update(status="PROCESSING", updated_at=_time(self.clock))
        execution["logs"].append({"type": "FIX", "status": "PROCESSING"})

    def evolve(self) -> None:
        for execution_id, execution in list(self.executions.items()):
            if execution["status"] == "PROCESSING":
                self.finish(execution_id)
        self.start()

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/auth/access-token", self._token, methods=["POST"]),
                Route("/execution/", self._list),
                Route("/execution/{id}", self._one),
            ]
        )

    async def _token(self, request: Request) -> Response:
        throttled = await self.admit(request)
        if throttled is not None:
            return throttled
        body = await request.json()
        if not isinstance(body, dict) or body.get("license_key") != self.license_key:
            return unauthorized("invalid license key")
        self.token_requests += 1
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return JSONResponse({"data": {"access_token": token}})

    async def _refused(self, request: Request) -> Response | None:
        if request.headers.get("access_token") not in self.tokens:
            return unauthorized("invalid or expired access token")
        return await self.admit(request)

    async def _list(self, request: Request) -> Response:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        paging = json.loads(request.query_params.get("pagination") or "{}")
        offset, limit = int(paging.get("offset", 0)), int(paging.get("limit", 50))
        newest = sorted(self.executions.values(), key=lambda e: e["created_at"], reverse=True)
        page = newest[offset : offset + limit]
        return JSONResponse(
            {"data": page, "pagination": {"total": len(page), "offset": offset, "limit": limit}}
        )

    async def _one(self, request: Request) -> Response:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        execution = self.executions.get(request.path_params["id"])
        if execution is None:
            return not_found("execution does not exist")
        return JSONResponse({"data": execution})
