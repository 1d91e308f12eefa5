"""Codat: companies and their pull-operation history (seed 003, providers.md §3.2).

Auth: ``Authorization: Basic <base64 of the API key>`` (401 otherwise). Lists take
``page`` (from 1) and ``pageSize`` and answer ``results``, ``pageNumber``, ``pageSize``,
``totalResults`` and ``_links``; history is newest first (``orderBy=-requested``). Every
answer carries ``X-Rate-Limit-Limit/Remaining/Reset`` for a daily ``quota``.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipestatus_dev.simulators.base import Simulator, not_found, unauthorized

#: The statuses a pull operation walks through, in order.
LIFECYCLE = ("Queued", "Fetching", "Mapping", "Complete")


def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class CodatSimulator(Simulator):
    api_key: str = "codat_simulated"
    quota: int = 1000
    used: int = 0
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    clock: datetime = field(default_factory=lambda: datetime(2026, 7, 14, 9, 0, tzinfo=UTC))

    def company(self) -> str:
        company_id = str(uuid.uuid4())
        self.companies[company_id] = {"id": company_id, "name": f"Company {len(self.companies)}"}
        return company_id

    def request_read(self, company_id: str, data_type: str = "invoices") -> str:
        self.clock += timedelta(seconds=1)
        operation_id = str(uuid.uuid4())
        self.operations[operation_id] = {
            "id": operation_id, "companyId": company_id,
            "connectionId": "a7c4e210-3f9b-4d1e-8b52-6e0f9d2c4b18", "dataType": data_type,
            "status": "Queued", "requested": _time(self.clock), "progress": 0,
            "isCompleted": False, "isErrored": False,
        }  # fmt: skip
        return operation_id

    def advance(self, operation_id: str) -> None:
        """One step along ``LIFECYCLE``."""
        self.clock += timedelta(seconds=10)
        operation = self.operations[operation_id]
        status = LIFECYCLE[min(LIFECYCLE.index(operation["status"]) + 1, len(LIFECYCLE) - 1)]
        operation.update(status=status, progress=LIFECYCLE.index(status) * 33)
        if status == "Complete":
            operation.update(completed=_time(self.clock), isCompleted=True, progress=100)

    def evolve(self) -> None:
        for operation_id, operation in list(self.operations.items()):
            if operation["status"] != "Complete":
                self.advance(operation_id)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/companies", self._companies),
                Route("/companies/{company}/data/history", self._history),
                Route("/companies/{company}/data/history/{id}", self._one),
            ]
        )

    async def _refused(self, request: Request) -> Response | None:
        expected = "Basic " + base64.b64encode(self.api_key.encode()).decode()
        if request.headers.get("authorization") != expected:
            return unauthorized("invalid API key")
        return await self.admit(request)

    def _answer(self, body: dict[str, Any]) -> Response:
        self.used += 1
        reset = datetime.combine(self.clock.date() + timedelta(days=1), datetime.min.time(), UTC)
        return JSONResponse(
            body,
            headers={
                "X-Rate-Limit-Limit": str(self.quota),
                "X-Rate-Limit-Remaining": str(max(self.quota - self.used, 0)),
                "X-Rate-Limit-Reset": _time(reset),
            },
        )

    def _page(self, request: Request, rows: list[dict[str, Any]]) -> Response:
        page = int(request.query_params.get("page", "1"))
        size = int(request.query_params.get("pageSize", "100"))
        path = request.url.path
        return self._answer(
            {
                "results": rows[(page - 1) * size : page * size],
                "pageNumber": page, "pageSize": size, "totalResults": len(rows),
                "_links": {
                    "self": {"href": path},
                    "current": {"href": f"{path}?page={page}&pageSize={size}"},
                },
            }
        )  # fmt: skip

    async def _companies(self, request: Request) -> Response:
        refused = await self._refused(request)
        return refused or self._page(request, list(self.companies.values()))

    async def _history(self, request: Request) -> Response:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        company = request.path_params["company"]
        if company not in self.companies:
            return not_found("company does not exist")
        rows = [o for o in self.operations.values() if o["companyId"] == company]
        rows.sort(key=lambda o: o["requested"], reverse=True)
        return self._page(request, rows)

    async def _one(self, request: Request) -> Response:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        operation = self.operations.get(request.path_params["id"])
        if operation is None or operation["companyId"] != request.path_params["company"]:
            return not_found("dataset does not exist")
        return self._answer(operation)
