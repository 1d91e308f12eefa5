"""A webhook receiver for tests: a small Starlette app on a real TCP port.

It verifies every Standard Webhooks signature, records what it received, and can be told
to be down (503), slow, or to refuse (400). Used by ``test_receivers.py`` (the dispatcher
alone) and ``test_receiver_outage.py`` (a worker process).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.adapters.receivers import verify_signature

SECRET = "whsec_" + base64.b64encode(b"integration-test-signing-key-32b").decode()


@dataclass
class Reception:
    headers: dict[str, str]
    body: dict[str, Any]
    signature_ok: bool
    status: int

    @property
    def key(self) -> tuple[str, str]:
        return self.body["dedup_key"], self.body["type"]


@dataclass
class HookServer:
    """A webhook receiver (Starlette on uvicorn); answers ``status`` after ``delay_s``."""

    status: int = 200
    #: 0: any free port; otherwise this one (a receiver coming back where it was).
    port: int = 0
    delay_s: float = 0.0
    receptions: list[Reception] = field(default_factory=list)
    url: str = ""
    delivered_event: asyncio.Event = field(default_factory=asyncio.Event)
    _server: AsgiServer | None = None

    async def __aenter__(self) -> HookServer:
        app = Starlette(routes=[Route("/hook", self._receive, methods=["POST"])])
        self._server = AsgiServer(app, host="127.0.0.1", port=self.port, name="hook")
        await self._server.__aenter__()
        self.port = self._server.port
        self.url = f"{self._server.url}/hook"
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        await self._server.close()

    @property
    def delivered(self) -> list[Reception]:
        return [r for r in self.receptions if 200 <= r.status < 300]

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.status
        ok = verify_signature(SECRET, headers, body)
        self.receptions.append(Reception(headers, json.loads(body), ok, status))
        if 200 <= status < 300:
            self.delivered_event.set()
        return Response(status_code=status)


def unused_port() -> int:
    """A local TCP port nothing listens on (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
