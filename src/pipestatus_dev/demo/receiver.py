"""A local alert receiver for the demo: verifies Standard Webhooks signatures, keeps alerts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from pipestatus.adapters.receivers import verify_signature


@dataclass(frozen=True, slots=True)
class ReceivedAlert:
    at: datetime
    kind: str  # alert.firing | alert.resolved
    rule: str
    summary: str
    verified: bool


class LocalReceiver:
    """HTTP server on loopback that records every webhook delivery it gets."""

    def __init__(self, secret: str, *, keep: int = 200) -> None:
        self._secret = secret
        self.alerts: deque[ReceivedAlert] = deque(maxlen=keep)
        self.total = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("receiver is not running")
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/alerts"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                await reader.readline()
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
            self._record(headers, body)
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

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
