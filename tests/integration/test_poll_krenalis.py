"""``pipestatus poll`` against the Krenalis simulator: real HTTP, real broker, real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

import pytest

from pipestatus.adapters.polling import PollMetrics
from pipestatus.poller import run_poller
from pipestatus.settings import Settings
from pipestatus_dev.embedded import LOOPBACK, free_port
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.simulators import KrenalisSimulator
from tests.integration.db_tools import fetch
from tests.integration.poll_tools import (
    fresh_topic,
    headers,
    one_round,
    poll_settings,
    published,
    sample,
    serving,
    value,
)

pytestmark = [pytest.mark.services]


@pytest.fixture
async def topic(services: TestServices) -> str:
    return await fresh_topic(services.kafka_bootstrap, "krenalis")


def source(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "krenalis-main", "provider": "krenalis", "base_url": url,
        "api_key": "api_simulated", "workspace": "1", "interval_s": 1,
    } | changes  # fmt: skip


def settings_for(services: TestServices, database_url: str, topic: str, url: str) -> Settings:
    return poll_settings(services.kafka_bootstrap, database_url, topic, source(url))


async def test_publishes_each_run_as_returned_then_only_changes(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = KrenalisSimulator()
    live, ended = sim.start(), sim.start()
    sim.finish(ended, records=40)
    async with serving(sim.app()) as url:
        settings = settings_for(services, database_url, topic, url)
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == []
        first = await published(services.kafka_bootstrap, topic)
        assert sorted(r.key.decode() for r in first) == sorted([live, ended])
        for record in first:
            run_id = record.key.decode()
            assert value(record) == sim.runs[run_id]  # the list item, unmodified
            carried = headers(record)
            assert carried["ce_source"] == "pipestatus/poll/krenalis"
            assert carried["ce_id"].startswith(f"{run_id}:")
            assert carried["ce_type"] == "com.krenalis.polled"

        assert await one_round(settings, metrics) == []  # nothing moved
        assert len(await published(services.kafka_bootstrap, topic)) == 2
        assert sample(metrics, "pipestatus_poll_unchanged_total", source="krenalis-main") == 2

        sim.finish(live, records=7)
        assert await one_round(settings, metrics) == []
        assert await one_round(settings, metrics) == []
        records = await published(services.kafka_bootstrap, topic)
        assert len(records) == 3  # the change, once
        assert records[-1].key.decode() == live
        assert value(records[-1])["endTime"] is not None
        assert headers(records[-1])["ce_id"] != headers(first[0])["ce_id"]
        assert sample(metrics, "pipestatus_poll_published_total", source="krenalis-main") == 3
        assert sample(metrics, "pipestatus_polls_total", source="krenalis-main", outcome="ok") == 4
        assert all(r.startswith("GET /v1/pipelines/runs") for r in sim.requests)


@pytest.mark.parametrize(
    ("changes", "status"),
    [({"api_key": "api_wrong"}, "auth"), ({"workspace": "2"}, "http_404")],
    ids=["wrong-key", "unknown-workspace"],
)
async def test_refused_credentials_fail_the_round_and_publish_nothing(
    services: TestServices, database_url: str, topic: str, changes: dict[str, str], status: str
) -> None:
    sim = KrenalisSimulator()
    sim.start()
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, **changes)
        )
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == ["krenalis-main"]
    assert await published(services.kafka_bootstrap, topic) == []
    assert sample(metrics, "pipestatus_poll_errors_total", source="krenalis-main", reason=status)
    assert await fetch(database_url, "SELECT * FROM poll_runs") == []


async def test_429_beyond_the_retries_fails_the_round_with_its_retry_after(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = KrenalisSimulator()
    sim.start()
    sim.throttle(10, retry_after_s=0.2)
    async with serving(sim.app()) as url:
        settings = settings_for(services, database_url, topic, url)
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == ["krenalis-main"]
    assert sim.throttled == 3  # the request and its two retries
    assert sample(
        metrics, "pipestatus_poll_errors_total", source="krenalis-main", reason="rate_limited"
    )
    assert await published(services.kafka_bootstrap, topic) == []


async def test_a_live_run_the_list_omits_is_read_by_id_and_forgotten_once_gone(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = KrenalisSimulator()
    run_id = sim.start()
    async with serving(sim.app()) as url:
        settings = settings_for(services, database_url, topic, url)
        assert await one_round(settings) == []
        del sim.runs[run_id]  # e.g. its pipeline was deleted
        assert await one_round(settings) == []  # 404 by id: forgotten
        assert await one_round(settings) == []  # and no longer asked for
    assert sim.requests.count(f"GET /v1/pipelines/runs/{run_id}") == 1
    assert await fetch(database_url, "SELECT * FROM poll_runs") == []
    assert len(await published(services.kafka_bootstrap, topic)) == 1


async def _poll_for(settings: Settings, seconds: float, metrics: PollMetrics) -> None:
    """``pipestatus poll`` (the loop, not ``--once``) for ``seconds``, then SIGTERM."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_poller(settings, stop=stop, metrics=metrics))
    await asyncio.sleep(seconds)
    assert not task.done(), "the poller ended by itself"
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_the_loop_absorbs_occasional_429s(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = KrenalisSimulator(rate_limit_every=3, retry_after_s=0.1)
    sim.start()
    sim.start()
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, interval_s=0.1)
        )
        metrics = PollMetrics()
        await _poll_for(settings, 2.0, metrics)
    assert sim.throttled >= 2
    assert sample(metrics, "pipestatus_polls_total", source="krenalis-main", outcome="ok") >= 5
    assert sample(metrics, "pipestatus_polls_total", source="krenalis-main", outcome="failed") == 0
    assert len(await published(services.kafka_bootstrap, topic)) == 2


async def test_an_unreachable_api_is_retried_with_exponential_backoff(
    services: TestServices, database_url: str, topic: str
) -> None:
    url = f"http://{LOOPBACK}:{free_port()}"  # nothing listens there
    settings = poll_settings(
        services.kafka_bootstrap, database_url, topic, source(url, interval_s=0.05),
        retry_initial_s=0.1,
    )  # fmt: skip
    metrics = PollMetrics()
    await _poll_for(settings, 2.0, metrics)
    errors = sample(
        metrics, "pipestatus_poll_errors_total", source="krenalis-main", reason="unreachable"
    )
    # 0.1, 0.2, 0.4, 0.8 s ceilings (each at least half): at most 6 tries in 2 s, where the
    # 0.05 s interval alone would allow about 40.
    assert 3 <= errors <= 6


async def _command(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipestatus", "poll", *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_the_real_command_polls_once_and_stops_on_sigterm(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = KrenalisSimulator()
    sim.start()
    async with serving(sim.app()) as url:
        env = {
            "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS": services.kafka_bootstrap,
            "PIPESTATUS_KAFKA__TOPICS": json.dumps({topic: "krenalis"}),
            "PIPESTATUS_DATABASE__URL": database_url,
            "PIPESTATUS_HTTP__PORT": "0",
            "PIPESTATUS_POLL__SOURCES": json.dumps([source(url)]),
        }
        once = await _command(env, "--once")
        _out, err = await asyncio.wait_for(once.communicate(), 60)
        assert once.returncode == 0, err.decode()
        assert len(await published(services.kafka_bootstrap, topic)) == 1

        wrong = {**env, "PIPESTATUS_POLL__SOURCES": json.dumps([source(url, api_key="api_x")])}
        refused = await _command(wrong, "--once")
        _out, err = await asyncio.wait_for(refused.communicate(), 60)
        assert refused.returncode == 1
        assert "poll failed for krenalis-main" in err.decode()
        assert "api_x" not in err.decode()

        looping = await _command(env)
        polls = len(sim.requests)
        deadline = time.monotonic() + 30
        while len(sim.requests) < polls + 2:  # two rounds of the loop
            assert time.monotonic() < deadline, "the command did not poll"
            await asyncio.sleep(0.1)
        looping.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(looping.communicate(), 30)
        assert looping.returncode == 0, err.decode()
    assert len(await published(services.kafka_bootstrap, topic)) == 1  # nothing moved since


async def test_a_world_that_evolves_by_itself_publishes_each_change_once(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = KrenalisSimulator(evolve_every_s=0.3)  # live runs end, a new one starts
    sim.start()
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, interval_s=0.1)
        )
        await _poll_for(settings, 2.0, PollMetrics())
    records = await published(services.kafka_bootstrap, topic)
    assert len(records) >= 5
    assert len({headers(r)["ce_id"] for r in records}) == len(records)  # never one twice
    last = {r.key.decode(): value(r) for r in records}
    ended = [run_id for run_id, run in sim.runs.items() if run["endTime"] is not None]
    assert all(last[run_id]["endTime"] is not None for run_id in ended if run_id in last)
