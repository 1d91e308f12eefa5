"""The tests' TCP proxy (``tcp_proxy.py``) against a tiny echo server, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pipestatus_dev.embedded import LOOPBACK
from tests.integration.tcp_proxy import TcpProxy


@dataclass
class Echo:
    """The echo server's view: its connections' readers and every byte it received."""

    readers: list[asyncio.StreamReader] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[int, Echo]]:
    """Echoes every byte back; yields its port and what it saw."""
    seen = Echo()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.readers.append(reader)
        with contextlib.suppress(OSError):
            while data := await reader.read(1024):
                seen.received += data
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 10)


async def test_forwards_both_ways_and_close_is_idempotent() -> None:
    async with echo_server() as (port, _), TcpProxy(LOOPBACK, port) as proxy:
        reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
        assert await roundtrip(reader, writer, b"hello") == b"hello"
        assert await roundtrip(reader, writer, b"x" * 200_000) == b"x" * 200_000
        assert proxy.open_connections == 1
        writer.close()
        await proxy.close()
        await proxy.close()
    assert proxy.accepted == 1


async def test_drop_resets_both_peers_and_new_connections_work() -> None:
    async with echo_server() as (port, seen), TcpProxy(LOOPBACK, port) as proxy:
        reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
        assert await roundtrip(reader, writer, b"before") == b"before"
        assert proxy.drop() == 1
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), 10)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(seen.readers[0].read(1), 10)
        assert proxy.open_connections == 0
        writer.close()

        reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
        assert await roundtrip(reader, writer, b"after") == b"after"
        writer.close()
    assert (proxy.accepted, proxy.dropped) == (2, 1)


async def test_stall_holds_bytes_without_closing_then_forwards_them() -> None:
    async with echo_server() as (port, _), TcpProxy(LOOPBACK, port) as proxy:
        reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
        assert await roundtrip(reader, writer, b"warm") == b"warm"
        began = time.monotonic()
        stall = proxy.stall(0.5)
        echoed = await roundtrip(reader, writer, b"held")
        assert echoed == b"held"
        assert stall.done(), "bytes went through during the stall"
        assert time.monotonic() - began >= 0.5
        assert proxy.open_connections == 1  # the same connection, never closed
        assert await roundtrip(reader, writer, b"again") == b"again"
        writer.close()
    assert (proxy.accepted, proxy.stalls, proxy.dropped) == (1, 1, 0)


async def test_drop_at_reply_delivers_the_request_and_never_its_answer() -> None:
    """The lost acknowledgement: the target acted on COMMIT, the client only sees a reset."""
    async with echo_server() as (port, seen), TcpProxy(LOOPBACK, port) as proxy:
        reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
        cut = proxy.drop_at_reply(b"COMMIT", opened_by=b"BEGIN", min_bytes=1000)
        assert await roundtrip(reader, writer, b"BEGIN" + b"x" * 100) == b"BEGIN" + b"x" * 100
        assert await roundtrip(reader, writer, b"COMMIT") == b"COMMIT"  # too small a one
        assert await roundtrip(reader, writer, b"BEGIN" + b"y" * 2000) == b"BEGIN" + b"y" * 2000
        writer.write(b"COMMIT")
        assert await asyncio.wait_for(cut, 10) == len(b"COMMIT")  # the echo, withheld
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), 10)
        assert seen.received.endswith(b"y" * 2000 + b"COMMIT")
        writer.close()
    assert (proxy.replies_dropped, proxy.dropped) == (1, 1)


async def test_a_target_that_is_down_resets_the_client() -> None:
    async with echo_server() as (port, _):
        pass  # closed: nothing listens on ``port`` any more
    async with TcpProxy(LOOPBACK, port) as proxy:
        reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), 10)
        writer.close()
