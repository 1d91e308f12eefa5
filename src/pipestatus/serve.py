"""Composition root of ``pipestatus serve``: the read API, the web page, and their probes.

A process of its own, apart from the worker, so each scales alone. It never migrates
(the worker and ``pipestatus migrate`` do) and reads with a small pool; its one write,
dead-letter replay, runs only with ``PIPESTATUS_API__WRITE_TOKEN`` set, through the same
use case as ``pipestatus dead-letters replay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipestatus import __version__
from pipestatus.adapters.api_http import ApiDeps, api_router, as_problem_json, install_problems
from pipestatus.adapters.api_queries import storable
from pipestatus.adapters.asgi import AsgiServer
from pipestatus.adapters.health import ReadinessCheck, health_app
from pipestatus.adapters.postgres import PgStore
from pipestatus.adapters.web import web_router
from pipestatus.api_models import ReplayRequest, ReplayResult
from pipestatus.app import alerting_from, routing_from, store_from
from pipestatus.replay import replay_dead_letters
from pipestatus.settings import Settings

logger = logging.getLogger(__name__)

#: Paths the probes app answers; everything else is the API and the page.
PROBES = frozenset({"/metrics", "/healthz", "/readyz"})
TITLE = "pipestatus read API"


def read_app(deps: ApiDeps) -> FastAPI:
    """The API under ``/api/v1``, the web page at ``/``, OpenAPI at ``/openapi.json``."""
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description="Runs, pipelines, dead letters, alerts and counts; errors are RFC 9457.",
        docs_url=None,
        redoc_url=None,
    )
    install_problems(app)
    app.include_router(api_router(deps))
    app.include_router(web_router(deps))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = as_problem_json(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, as ``schemas/openapi.json`` holds it (no database needed)."""
    return read_app(ApiDeps(store=PgStore("postgresql://unused"))).openapi()


class _Routed:
    """Probes to the health app, the rest to the read app, with request metrics."""

    def __init__(self, app: ASGIApp, probes: ASGIApp, registry: CollectorRegistry) -> None:
        self._app = app
        self._probes = probes
        self._requests = Counter(
            "pipestatus_api_requests", "API and page requests", ["status"], registry=registry
        )
        self._seconds = Histogram(
            "pipestatus_api_request_seconds", "time to answer a request", registry=registry
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self._probes(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            self._requests.labels(str(status)).inc()
            self._seconds.observe(time.perf_counter() - started)


def served_app(deps: ApiDeps, registry: CollectorRegistry, readiness: ReadinessCheck) -> ASGIApp:
    return _Routed(read_app(deps), health_app(registry, readiness), registry)


async def run_serve(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[AsgiServer], None] | None = None,
) -> None:
    """Serves until ``stop`` is set."""
    api = settings.api
    routing, alerting = routing_from(settings), alerting_from(settings)
    token = api.write_token.get_secret_value() if api.write_token else None
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(store_from(settings.database))

        async def replay(request: ReplayRequest) -> ReplayResult:
            if not storable(request.reason):  # no stored reason can match it
                return ReplayResult(applied=0, duplicate=0, stale=0, still_failing=0)
            report = await replay_dead_letters(
                store, routing, ids=request.ids, reason=request.reason, alerting=alerting
            )
            logger.info("replay over the API: %s", vars(report))
            return ReplayResult.model_validate(vars(report))

        async def readiness() -> list[str]:
            return [] if await store.ping() else ["database unreachable"]

        deps = ApiDeps(store=store, replay=replay if token else None, write_token=token)
        server = await stack.enter_async_context(
            AsgiServer(
                served_app(deps, CollectorRegistry(), readiness),
                host=api.host,
                port=api.port,
                name="api",
            )
        )
        logger.info(
            "read API and web page on %s/ (replay %s)", server.url, "on" if token else "off"
        )
        if on_ready is not None:
            on_ready(server)
        await stop.wait()
        logger.info("serve stopping: finishing requests in flight")
    logger.info("serve stopped")
