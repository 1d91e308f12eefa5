"""One way to serve an ASGI app inside a pipestatus process: uvicorn on the running loop.

The worker, the ingress and the API each own their event loop and their signal handling
(SIGTERM drains the batch in flight first), so uvicorn runs as one more task of that
loop: it never installs signal handlers of its own, and closing the server is the
process's decision. The socket is bound before uvicorn starts, so port 0 works and a
port in use fails at once with ``OSError`` instead of uvicorn's ``sys.exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from pipestatus.adapters.lifecycle import AsyncClosing

logger = logging.getLogger(__name__)

#: Requests still running after this long at close are cancelled.
GRACEFUL_CLOSE_S = 5


class _InLoopServer(uvicorn.Server):
    """uvicorn's server minus its signal handlers: the process owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AsgiServer(AsyncClosing):
    """Serves ``app`` on ``host:port`` until closed (an async context manager)."""

    def __init__(self, app: ASGIApp, *, host: str, port: int, name: str) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._name = name
        self._socket: socket.socket | None = None
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._socket is None:
            return self._port
        return int(self._socket.getsockname()[1])

    @property
    def bound_address(self) -> str | None:
        """The address the socket listens on, while open."""
        return None if self._socket is None else str(self._socket.getsockname()[0])

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> Self:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,  # our logging setup, not uvicorn's
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_CLOSE_S,
        )
        self._server = _InLoopServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=self._name)
        while not self._server.started:
            if self._task.done():  # startup failed: surface its error
                await self._task
                raise RuntimeError(f"{self._name} stopped while starting")
            await asyncio.sleep(0.01)
        return self

    async def close(self) -> None:
        server, task, sock = self._server, self._task, self._socket
        self._server = self._task = self._socket = None
        if server is not None and task is not None:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if sock is not None:
            sock.close()
