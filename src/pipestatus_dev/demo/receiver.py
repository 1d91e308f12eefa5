"""A local alert receiver for the demo: verifies Standard Webhooks signatures, keeps alerts."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.adapters.receivers import verify_signature


@dataclass(frozen=True, slots=True)
class ReceivedAlert:
    at: datetime
    kind: str  # alert.firing | alert.resolved
    rule: str
    summary: str
    verified: bool


class LocalReceiver:
    """HTTP server on loopback (Starlette on uvicorn) that records every webhook delivery."""

    def __init__(self, secret: str, *, keep: int = 200) -> None:
        self._secret = secret
        self.alerts: deque[ReceivedAlert] = deque(maxlen=keep)
        self.total = 0
        self._server = AsgiServer(
            Starlette(routes=[Route("/alerts", self._receive, methods=["POST"])]),
            host="127.0.0.1",
            port=0,
            name="demo-receiver",
        )
        self._running = False

    @property
    def url(self) -> str:
        if not self._running:
            raise RuntimeError("receiver is not running")
        return f"{self._server.url}/alerts"

    async def __aenter__(self) -> Self:
        await self._server.__aenter__()
        self._running = True
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._running = False
        await self._server.close()

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        try:
            self._record({name.lower(): value for name, value in request.headers.items()}, body)
        except ValueError:  # not a JSON alert document
            return Response(status_code=400)
        return Response(status_code=204)

    def _record(self, headers: dict[str, str], body: bytes) -> None:
        document = json.loads(body)
        self.total += 1
        self.alerts.append(
            ReceivedAlert(
                at=datetime.now(UTC),
                kind=str(document.get("type", "?")),
                rule=str(document.get("rule", "?")),
                summary=str(document.get("annotations", {}).get("summary", "")),
                verified=verify_signature(self._secret, headers, body),
            )
        )
