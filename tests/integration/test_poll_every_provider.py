"""What every poller must do, against each provider's simulator: a crash between produce and
checkpoint costs a republish the worker dedupes, a 429 waits its Retry-After, and two
replicas never poll one source at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pipestatus.adapters.polling import PollMetrics
from pipestatus.app import run_worker
from pipestatus.domain.states import Provider
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.simulators import (
    CodatSimulator,
    KrenalisSimulator,
    NuvoSimulator,
    Simulator,
    ZohoSimulator,
)
from pipestatus_dev.simulators.zoho import JOB_URL, JOBS_URL, SUCCESS
from tests.integration.db_tools import fetch
from tests.integration.kafka_tools import worker_settings
from tests.integration.poll_tools import (
    fresh_topic,
    headers,
    one_round,
    poll_settings,
    published,
    sample,
    serving,
)

pytestmark = [pytest.mark.services]


@dataclass(frozen=True)
class World:
    """A simulator with two runs (one ended) and the source that polls it."""

    provider: Provider
    simulator: Simulator
    runs: tuple[str, str]
    source: Callable[[str], dict[str, Any]]


def krenalis() -> World:
    sim = KrenalisSimulator()
    live, ended = sim.start(), sim.start()
    sim.finish(ended)
    return World(Provider.krenalis, sim, (live, ended), lambda url: {
        "provider": "krenalis", "base_url": url, "api_key": sim.api_key, "workspace": "1",
    })  # fmt: skip


def nuvo() -> World:
    sim = NuvoSimulator()
    live, ended = sim.start(), sim.start()
    sim.finish(ended)
    return World(Provider.nuvo, sim, (live, ended), lambda url: {
        "provider": "nuvo", "base_url": url, "license_key": sim.license_key,
    })  # fmt: skip


def codat() -> World:
    sim = CodatSimulator()
    company = sim.company()
    live, ended = sim.request_read(company, "invoices"), sim.request_read(company, "bills")
    for _ in range(3):
        sim.advance(ended)
    return World(Provider.codat, sim, (live, ended), lambda url: {
        "provider": "codat", "base_url": url, "api_key": sim.api_key,
    })  # fmt: skip


def zoho() -> World:
    sim = ZohoSimulator()
    live, ended = sim.start("p1"), sim.start("p1")
    sim.move(ended, SUCCESS)
    return World(Provider.zoho_dataprep, sim, (live, ended), lambda url: {
        "provider": "zoho_dataprep", "base_url": url, "accounts_url": url,
        "client_id": sim.client_id, "client_secret": sim.client_secret,
        "refresh_token": sim.refresh_token, "job_url": JOB_URL, "jobs_url": JOBS_URL,
        "jobs_field": "jobs", "pipeline_ids": ["p1"],
    })  # fmt: skip


WORLDS = [krenalis, nuvo, codat, zoho]
IDS = ["krenalis", "nuvo", "codat", "zoho_dataprep"]


def source_of(world: World, url: str) -> dict[str, Any]:
    return {"name": "main", "interval_s": 1} | world.source(url)


@pytest.mark.parametrize("make", WORLDS, ids=IDS)
async def test_crash_between_produce_and_checkpoint_is_one_effect(
    services: TestServices, database_url: str, make: Callable[[], World]
) -> None:
    world = make()
    topic = await fresh_topic(services.kafka_bootstrap, world.provider.value)
    async with serving(world.simulator.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source_of(world, url)
        )
        assert await one_round(settings) == []
        await fetch(database_url, "DELETE FROM poll_runs")  # crashed before checkpointing
        assert await one_round(settings) == []
        assert await one_round(settings) == []  # checkpointed now: nothing more
    records = await published(services.kafka_bootstrap, topic)
    assert len(records) == 4
    assert len({headers(r)["ce_id"] for r in records}) == 2
    worker = worker_settings(services.kafka_bootstrap, database_url, {topic: world.provider})
    summary = await run_worker(worker, until_idle=True)
    assert (summary.records, summary.outcomes["duplicate"]) == (4, 2)
    rows = await fetch(database_url, "SELECT run_id, state FROM runs")
    states = {row["run_id"]: row["state"] for row in rows}
    assert sorted(states) == sorted(world.runs)
    live, ended = world.runs
    assert (states[live] in ("queued", "running"), states[ended]) == (True, "succeeded")
    assert len(await fetch(database_url, "SELECT 1 FROM processed_events")) == 2
    transitions = await fetch(database_url, "SELECT run_id FROM run_transitions")
    assert sorted(row["run_id"] for row in transitions) == sorted(world.runs)


@pytest.mark.parametrize("make", WORLDS, ids=IDS)
async def test_a_429_waits_its_retry_after(
    services: TestServices, database_url: str, make: Callable[[], World]
) -> None:
    world = make()
    topic = await fresh_topic(services.kafka_bootstrap, world.provider.value)
    world.simulator.throttle(1, retry_after_s=1.0)
    async with serving(world.simulator.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source_of(world, url)
        )
        started = time.monotonic()
        assert await one_round(settings) == []
        assert time.monotonic() - started >= 1.0
    assert world.simulator.throttled == 1
    assert len(await published(services.kafka_bootstrap, topic)) == 2


@pytest.mark.parametrize("make", WORLDS, ids=IDS)
async def test_two_replicas_never_poll_one_source_at_once(
    services: TestServices, database_url: str, make: Callable[[], World]
) -> None:
    world = make()
    world.simulator.latency_s = 0.5  # holds the first replica's round open
    topic = await fresh_topic(services.kafka_bootstrap, world.provider.value)
    async with serving(world.simulator.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source_of(world, url)
        )
        metrics = [PollMetrics(), PollMetrics()]
        assert await asyncio.gather(*(one_round(settings, m) for m in metrics)) == [[], []]
    outcomes = sorted(
        (
            sample(m, "pipestatus_polls_total", source="main", outcome="ok"),
            sample(m, "pipestatus_polls_total", source="main", outcome="locked"),
        )
        for m in metrics
    )
    assert outcomes == [(0.0, 1.0), (1.0, 0.0)]
    assert len(await published(services.kafka_bootstrap, topic)) == 2
