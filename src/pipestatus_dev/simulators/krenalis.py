"""Krenalis: ``GET /v1/pipelines/runs`` and ``GET /v1/pipelines/runs/{id}`` (seed 002).

Auth: ``Authorization: Bearer <key>`` and ``Krenalis-Workspace: <id>``; a wrong key is
401, an unknown workspace 404 ("workspace does not exist"). The list has no paging and
is ordered by id descending, and ids are random, so it is not chronological.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipestatus_dev.simulators.base import Simulator, not_found, unauthorized

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # Base58
_STEPS = 6


def _base58(length: int = 12) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class KrenalisSimulator(Simulator):
    api_key: str = "api_simulated"
    workspace: str = "1"
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    clock: datetime = field(default_factory=lambda: datetime(2026, 7, 14, 9, 0, tzinfo=UTC))

    def start(self, pipeline: str = "705981339") -> str:
        """A new live run (``endTime`` null, counts all zero); returns its id."""
        self.clock += timedelta(seconds=1)
        run_id = _base58()
        self.runs[run_id] = {
            "id": run_id, "pipeline": pipeline, "startTime": _time(self.clock),
            "endTime": None, "passed": [0] * _STEPS, "failed": [0] * _STEPS, "error": "",
        }  # fmt: skip
        return run_id

    def finish(self, run_id: str, *, records: int = 100, error: str = "") -> None:
        self.clock += timedelta(seconds=30)
        run = self.runs[run_id]
        run.update(endTime=_time(self.clock), passed=[records] * _STEPS, error=error)

    def evolve(self) -> None:
        """Moves the world on: every live run ends, and one new run starts."""
        for run_id, run in list(self.runs.items()):
            if run["endTime"] is None:
                self.finish(run_id)
        self.start()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/pipelines/runs", self._list),
                Route("/v1/pipelines/runs/{id}", self._one),
            ]
        )

    async def _refused(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return unauthorized("invalid API key")
        if request.headers.get("krenalis-workspace") != self.workspace:
            return not_found("workspace does not exist")
        return await self.admit(request)

    async def _list(self, request: Request) -> Response:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        ordered = sorted(self.runs.values(), key=lambda run: run["id"], reverse=True)
        return JSONResponse({"runs": ordered})

    async def _one(self, request: Request) -> Response:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        run = self.runs.get(request.path_params["id"])
        return JSONResponse(run) if run is not None else not_found("run does not exist")
