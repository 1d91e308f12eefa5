"""A TCP proxy of the tests' own, for network faults between a worker and a service.

``TcpProxy`` listens on 127.0.0.1 and forwards every connection to one target. On
command it resets every current connection (``drop``: SO_LINGER 0, so both peers get an
RST, as when a NAT or a firewall forgets a flow) or stops forwarding bytes for a while
without closing anything (``stall``: the peers see a silent network, their kernel
buffers fill), then forwards again. New connections are accepted throughout.

``drop_at_reply`` is the lost acknowledgement: the target gets a request and acts on it,
and the connection is reset just as its answer comes back, so the client never learns.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass
from typing import Self

from pipestatus.adapters.lifecycle import AsyncClosing
from pipestatus_dev.embedded import LOOPBACK

_CHUNK = 64 * 1024
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    writer.transport.abort()


@dataclass(frozen=True)
class _ReplyDrop:
    """Armed by ``drop_at_reply``: which request, after how much since which opener."""

    request: bytes
    opened_by: bytes
    min_bytes: int
    done: asyncio.Future[int]


class _Link:
    """One proxied connection: the client's side, the target's side, two pumps."""

    def __init__(self, client: asyncio.StreamWriter, target: asyncio.StreamWriter) -> None:
        self.writers = (client, target)
        self.pumps: list[asyncio.Task[None]] = []
        self.sent_since_open = 0  # client bytes since the last ``opened_by`` marker
        self.reply_drop: _ReplyDrop | None = None

    def reset(self) -> None:
        for writer in self.writers:
            _reset(writer)
        for pump in self.pumps:
            pump.cancel()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class TcpProxy(AsyncClosing):
    """``async with TcpProxy(host, port) as proxy``: clients connect to ``proxy.port``.

    ``port`` may be given to listen on a known port (a broker's advertised address).
    ``close()`` is idempotent; it resets the connections still open.
    """

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._stalls: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._armed: _ReplyDrop | None = None
        self.accepted = 0
        self.dropped = 0
        self.stalls = 0
        self.replies_dropped = 0

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not listening"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def start(self) -> Self:
        self._server = await asyncio.start_server(
            self._handle, LOOPBACK, self._requested_port, reuse_address=True
        )
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    def drop(self) -> int:
        """Resets every current connection (RST both ways); returns how many there were."""
        links = list(self._links)
        for link in links:
            link.reset()
        self._links.difference_update(links)
        self.dropped += len(links)
        return len(links)

    def drop_at_reply(
        self, request: bytes, *, opened_by: bytes, min_bytes: int
    ) -> asyncio.Future[int]:
        """One shot: forwards the next ``request`` (bytes in one client chunk) sent after at
        least ``min_bytes`` since ``opened_by``, then resets that connection as the first
        answer arrives, undelivered. The future gives the answer's withheld byte count.

        For PostgreSQL, ``(b"COMMIT", opened_by=b"BEGIN", min_bytes=N)`` is a commit the
        server made and the client never heard of, in a transaction of N bytes or more.
        """
        assert self._armed is None, "already armed"
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._armed = _ReplyDrop(request, opened_by, min_bytes, done)
        return done

    def stall(self, seconds: float) -> asyncio.Task[None]:
        """Stops forwarding now, either way, closing nothing; flows again after ``seconds``.

        Returns the task that ends the stall (await it to wait for the end).
        """
        self.stalls += 1
        self._flowing.clear()
        task = asyncio.create_task(self._flow_after(seconds))
        self._stalls.add(task)
        task.add_done_callback(self._stalls.discard)
        return task

    async def _flow_after(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)  # the fault's duration, not a synchronization
        finally:
            self._flowing.set()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self._armed is not None:
            self._armed.done.cancel()
        for link in list(self._links):
            link.reset()
        self._links.clear()
        tasks = [*self._handlers, *self._stalls]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)  # the target is down: the client sees a refused-like reset
            return
        link = _Link(writer, target_writer)
        self._links.add(link)
        link.pumps = [
            asyncio.create_task(self._pump(reader, target_writer, link, upstream=True)),
            asyncio.create_task(self._pump(target_reader, writer, link, upstream=False)),
        ]
        try:
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in link.pumps:
                pump.cancel()
            await asyncio.gather(*link.pumps, return_exceptions=True)
            if link in self._links:  # not reset: one side closed, so close the other
                self._links.discard(link)
                link.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        upstream: bool,
    ) -> None:
        with contextlib.suppress(OSError):
            while True:
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    return
                await self._flowing.wait()  # a chunk read just before a stall waits too
                if upstream:
                    self._watch_request(link, data)
                elif link.reply_drop is not None:
                    self._drop_reply(link, len(data))
                    return
                writer.write(data)
                await writer.drain()

    def _watch_request(self, link: _Link, data: bytes) -> None:
        armed = self._armed
        if armed is None:
            return
        opener = data.rfind(armed.opened_by)
        link.sent_since_open = (
            len(data) - opener if opener >= 0 else link.sent_since_open + len(data)
        )
        if armed.request in data and link.sent_since_open >= armed.min_bytes:
            self._armed, link.reply_drop = None, armed  # before the request is forwarded

    def _drop_reply(self, link: _Link, withheld: int) -> None:
        armed = link.reply_drop
        assert armed is not None
        self._links.discard(link)
        link.reset()
        self.dropped += 1
        self.replies_dropped += 1
        if not armed.done.done():
            armed.done.set_result(withheld)
