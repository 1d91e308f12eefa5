"""The worker's probes and metrics over HTTP: ``/metrics``, ``/healthz`` and ``/readyz``.

``/metrics`` is prometheus-client's own ASGI app, so a scrape gets what it negotiates:
OpenMetrics when ``Accept`` asks for it, gzip when ``Accept-Encoding`` does. The probes
follow docs/runbook.md: ``/healthz`` answers while the process lives, ``/readyz`` is
503 with one reason per line while a dependency is down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Self

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pipestatus.adapters.asgi import AsgiServer

logger = logging.getLogger(__name__)

#: Returns the reasons the worker is not ready; empty when it is.
ReadinessCheck = Callable[[], Awaitable[list[str]]]


class _Mounted:
    """An ASGI app as a route's endpoint: Starlette calls a non-function endpoint as ASGI.

    (A ``Mount`` would answer ``/metrics`` with a redirect to ``/metrics/``.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def health_app(registry: CollectorRegistry, readiness: ReadinessCheck) -> FastAPI:
    """The endpoints as an ASGI app (no OpenAPI pages: these are for machines)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.router.routes.append(
        Route("/metrics", _Mounted(make_asgi_app(registry)), methods=["GET", "HEAD"])
    )

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok\n"

    @app.get("/readyz", response_class=PlainTextResponse)
    async def readyz() -> PlainTextResponse:
        reasons = await readiness()
        if reasons:
            return PlainTextResponse("\n".join(reasons) + "\n", status_code=503)
        return PlainTextResponse("ready\n")

    return app


class HealthServer(AsgiServer):
    """Serves the endpoints until closed (an async context manager)."""

    def __init__(
        self, registry: CollectorRegistry, readiness: ReadinessCheck, *, host: str, port: int
    ) -> None:
        super().__init__(health_app(registry, readiness), host=host, port=port, name="health")

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        logger.info("metrics and health endpoints on %s/metrics", self.url)
        return self
