"""The worker's small HTTP server: ``/metrics``, ``/healthz`` and ``/readyz``.

Plain asyncio streams: three GET endpoints do not justify a web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Self

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pipestatus.adapters.lifecycle import AsyncClosing

logger = logging.getLogger(__name__)

#: Returns the reasons the worker is not ready; empty when it is.
ReadinessCheck = Callable[[], Awaitable[list[str]]]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer(AsyncClosing):
    """Serves metrics and probes until closed (an async context manager)."""

    def __init__(
        self, registry: CollectorRegistry, readiness: ReadinessCheck, *, host: str, port: int
    ) -> None:
        self._registry = registry
        self._readiness = readiness
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        logger.info("metrics and health endpoints on %s/metrics", self.url)
        return self

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readline()
                while await reader.readline() not in (b"\r\n", b"\n", b""):
                    pass  # headers are not needed
                parts = request.decode("latin-1").split()
                status, content_type, body = await self._respond(parts)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, parts: list[str]) -> tuple[int, str, bytes]:
        if len(parts) < 2:
            return 404, "text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method != "GET":
            return 405, "text/plain", b"only GET\n"
        if target == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if target == "/healthz":
            return 200, "text/plain", b"ok\n"
        if target == "/readyz":
            reasons = await self._readiness()
            if reasons:
                return 503, "text/plain", ("\n".join(reasons) + "\n").encode()
            return 200, "text/plain", b"ready\n"
        return 404, "text/plain", b"not found\n"
