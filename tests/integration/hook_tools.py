"""A webhook receiver for tests: a few lines of asyncio on a real TCP port.

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
    """One request per connection (``Connection: close``); answers ``status``."""

    status: int = 200
    #: 0: any free port; otherwise this one (a receiver coming back where it was).
    port: int = 0
    delay_s: float = 0.0
    receptions: list[Reception] = field(default_factory=list)
    url: str = ""
    _server: asyncio.Server | None = None
    delivered_event: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def __aenter__(self) -> HookServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def delivered(self) -> list[Reception]:
        return [r for r in self.receptions if 200 <= r.status < 300]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await reader.readline()  # POST /hook HTTP/1.1
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            status = self.status
            ok = verify_signature(SECRET, headers, body)
            self.receptions.append(Reception(headers, json.loads(body), ok, status))
            if 200 <= status < 300:
                self.delivered_event.set()
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        finally:
            writer.close()
            self._tasks.discard(task)


def unused_port() -> int:
    """A local TCP port nothing listens on (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
