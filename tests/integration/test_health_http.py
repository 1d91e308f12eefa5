"""The probes and metrics server over real sockets: negotiation, gzip, status codes, close."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from pipestatus.adapters.health import HealthServer

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Readiness:
    """A readiness check the test steers."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def __call__(self) -> list[str]:
        return list(self.reasons)


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
async def server(readiness: Readiness) -> AsyncIterator[HealthServer]:
    registry = CollectorRegistry()
    Counter("pipestatus_test_things", "Things counted.", registry=registry).inc(3)
    async with HealthServer(registry, readiness, host="127.0.0.1", port=0) as running:
        yield running


async def test_metrics_speak_prometheus_text_by_default(server: HealthServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "pipestatus_test_things_total 3.0" in response.text.splitlines()
    assert "content-encoding" not in response.headers


async def test_metrics_speak_openmetrics_when_asked(server: HealthServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.headers["content-type"] == OPENMETRICS
    lines = response.text.splitlines()
    assert "pipestatus_test_things_total 3.0" in lines
    assert lines[-1] == "# EOF"


async def test_metrics_are_gzipped_when_asked(server: HealthServer) -> None:
    gzip_only = {"Accept-Encoding": "gzip"}
    async with (
        httpx.AsyncClient(base_url=server.url) as client,
        client.stream("GET", "/metrics", headers=gzip_only) as r,
    ):
        compressed = b"".join([chunk async for chunk in r.aiter_raw()])
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert b"pipestatus_test_things_total 3.0" in gzip.decompress(compressed)


async def test_probes_report_liveness_and_readiness(
    server: HealthServer, readiness: Readiness
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/healthz")).text == "ok\n"
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready\n")
        readiness.reasons = ["database unreachable", "broker unreachable"]
        unready = await client.get("/readyz")
        assert (unready.status_code, unready.text) == (
            503,
            "database unreachable\nbroker unreachable\n",
        )
        healthy = await client.get("/healthz")
        assert healthy.status_code == 200  # alive while a dependency is down


async def test_unknown_paths_and_methods_are_refused(server: HealthServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.post("/metrics")).status_code == 405
        assert (await client.post("/readyz")).status_code == 405
        assert (await client.get("/docs")).status_code == 404  # no OpenAPI pages here


async def test_a_port_in_use_fails_at_once_and_close_is_idempotent(readiness: Readiness) -> None:
    registry = CollectorRegistry()
    async with HealthServer(registry, readiness, host="127.0.0.1", port=0) as first:
        taken = first.port
        with pytest.raises(OSError, match="Address already in use"):
            async with HealthServer(registry, readiness, host="127.0.0.1", port=taken):
                pass
        await first.close()
        await first.close()
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{taken}/healthz")
