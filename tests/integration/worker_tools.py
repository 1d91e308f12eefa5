"""Running a worker in the background of a test, and waiting on observable conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import httpx

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.adapters.health import HealthServer
from pipestatus.adapters.metrics import Metrics
from pipestatus.app import run_worker
from pipestatus.settings import Settings


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, metrics: Metrics | None = None
) -> AsyncIterator[HealthServer]:
    """Starts ``run_worker`` as a task; yields its HTTP server; stops it gracefully."""
    stop = asyncio.Event()
    ready: asyncio.Future[HealthServer | None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_worker(settings, stop=stop, metrics=metrics, on_ready=ready.set_result)
    )
    waiting: set[asyncio.Future[Any]] = {task, ready}
    done, _ = await asyncio.wait(waiting, timeout=90, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the worker's startup error
    server = ready.result()
    assert server is not None, "the worker serves HTTP in tests"
    try:
        yield server
    finally:
        stop.set()
        await asyncio.wait_for(task, 90)


#: ``run_ingress`` and ``run_serve``: serve until ``stop``, report the server to ``on_ready``.
ServerRun = Callable[..., Coroutine[Any, Any, None]]


@contextlib.asynccontextmanager
async def running_server(run: ServerRun, settings: Settings) -> AsyncIterator[AsgiServer]:
    """``run(settings)`` as a task; yields its server; stops it like SIGTERM does."""
    stop = asyncio.Event()
    ready: asyncio.Future[AsgiServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(settings, stop=stop, on_ready=ready.set_result))
    waiting: set[asyncio.Future[Any]] = {task, ready}
    done, _ = await asyncio.wait(waiting, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the startup error
    try:
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within_s: float = 60, what: str = "condition"
) -> None:
    """Polls ``check`` until true; fails naming ``what`` after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url)
