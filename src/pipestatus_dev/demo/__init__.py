"""``pipestatus demo``: the whole product on embedded services, with live traffic.

Starts the embedded broker and PostgreSQL, the worker (with its metrics endpoint, alert
dispatcher and stuck-run sweep), a local alert receiver, and feeds realistic traffic for
all four providers; the edge (demo/edge.py) adds provider simulators polled by the real
poller and signed Codat webhooks through the real ingress. A terminal view shows runs
(and which came through the pollers and the ingress), the edge, transitions, dead letters
and alerts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import socket
import sys
import time
from typing import Any, TextIO

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.adapters.health import HealthServer
from pipestatus.adapters.metrics import Metrics
from pipestatus.adapters.postgres import PgStore
from pipestatus.app import install_stop_signals, run_worker
from pipestatus.domain.states import Provider
from pipestatus.serve import run_serve
from pipestatus.settings import DEFAULT_TOPICS, ApiSettings, Settings
from pipestatus_dev.demo.edge import running_edge
from pipestatus_dev.demo.feed import Feeder, demo_records
from pipestatus_dev.demo.receiver import LocalReceiver
from pipestatus_dev.demo.view import render, snapshot
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.provision.topics import create_topics

#: Demo runs are short: a run without progress for this long counts as stuck.
STUCK_AFTER_S = 15.0


def _step(out: TextIO, text: str) -> None:
    print(f"==> {text}", file=out, flush=True)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def run_demo(duration_s: float | None, rate: float, out: TextIO = sys.stdout) -> int:
    """Runs until Ctrl-C or ``duration_s``; returns the exit code."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    began = time.monotonic()
    _step(out, "starting the embedded Kafka-protocol broker (Tansu) and PostgreSQL")
    provided = TestServices(paths=("embedded",), kafka_env="", database_env="", purpose="the demo")
    await asyncio.to_thread(provided.start)
    try:
        _step(out, f"broker on {provided.kafka_bootstrap}; PostgreSQL ready")
        return await _with_services(
            provided.kafka_bootstrap, provided.database_url, duration_s, rate, stop, began, out
        )
    finally:
        _step(out, "stopping the embedded services")
        await asyncio.to_thread(provided.stop)


async def _with_services(
    bootstrap: str,
    database_url: str,
    duration_s: float | None,
    rate: float,
    stop: asyncio.Event,
    began: float,
    out: TextIO,
) -> int:
    topics = {provider: topic for topic, provider in DEFAULT_TOPICS.items()}
    await create_topics(bootstrap, topics.values(), partitions=3)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    async with LocalReceiver(secret) as receiver, PgStore(database_url, max_size=2) as store:
        settings = Settings(
            kafka={"bootstrap_servers": bootstrap, "group_id": "pipestatus-demo"},
            database={"url": database_url},
            http={"port": 9108 if _port_free(9108) else 0},
            alerts={
                "receivers": [
                    {"name": "demo", "type": "webhook", "url": receiver.url, "secret": secret}
                ],
                "stuck_after_s": {p.value: STUCK_AFTER_S for p in Provider},
                "sweep_interval_s": 2.0,
                "retry_initial_s": 0.5,
                "retry_max_s": 5.0,
            },
        )
        ready: asyncio.Future[HealthServer | None] = asyncio.get_running_loop().create_future()
        worker_stop = asyncio.Event()
        _step(out, "starting the worker (migrations, consumer group, metrics, alerts)")
        worker = asyncio.create_task(
            run_worker(settings, stop=worker_stop, metrics=Metrics(), on_ready=ready.set_result)
        )
        server = await ready
        metrics_url = f"{server.url}/metrics" if server else "(disabled)"
        # `pipestatus serve` beside the worker: the web page shows the demo's runs live.
        page_ready: asyncio.Future[AsgiServer] = asyncio.get_running_loop().create_future()
        serve_stop = asyncio.Event()
        serving = asyncio.create_task(
            run_serve(
                settings.model_copy(
                    update={"api": ApiSettings(port=8089 if _port_free(8089) else 0)}
                ),
                stop=serve_stop,
                on_ready=page_ready.set_result,
            )
        )
        starting: set[asyncio.Future[Any]] = {serving, page_ready}
        await asyncio.wait(starting, return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()  # raises why the page could not start
        _step(out, f"web page at {page_ready.result().url}/ (runs appear live)")
        _step(out, f"metrics at {metrics_url}; feeding traffic at {rate:.0f} records/s")
        records = demo_records(max(200, int(rate * (duration_s or 600))))
        feeder = Feeder(bootstrap, topics, rate)
        feeding = asyncio.create_task(feeder.run(records, stop))
        interactive = out.isatty()
        _step(out, "starting the edge: provider simulators polled by `pipestatus poll`, signed"
              " Codat webhooks through `pipestatus ingress`")  # fmt: skip
        try:
            async with running_edge(bootstrap, database_url) as edge:
                while not stop.is_set():
                    elapsed = time.monotonic() - began
                    if duration_s is not None and elapsed >= duration_s:
                        break
                    if interactive:
                        view = render(await snapshot(store), receiver.alerts, elapsed_s=elapsed,
                                      produced=feeder.produced, metrics_url=metrics_url,
                                      edge=edge.line())  # fmt: skip
                        print("\x1b[2J\x1b[H" + view, file=out, flush=True)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0 if interactive else 5.0):
                            await stop.wait()
                    if not interactive:
                        _step(out, f"{elapsed:.0f}s: {feeder.produced} records produced; "
                              f"{edge.line()}")  # fmt: skip
        finally:
            stop.set()
            await feeding
            serve_stop.set()
            await serving
            worker_stop.set()
            await worker
        print(
            render(await snapshot(store), receiver.alerts, elapsed_s=time.monotonic() - began,
                   produced=feeder.produced, metrics_url=metrics_url, edge=edge.line()),
            file=out, flush=True,
        )  # fmt: skip
    return 0
