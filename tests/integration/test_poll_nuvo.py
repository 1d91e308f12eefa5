"""``pipestatus poll`` against the nuvo simulator: token flow, paging, by-id reads, FIX."""

from __future__ import annotations

from typing import Any

import pytest

from pipestatus.adapters.polling import PollMetrics
from pipestatus.domain.states import Provider
from pipestatus.providers import parse_record
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.simulators import NuvoSimulator
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
    return await fresh_topic(services.kafka_bootstrap, "nuvo")


def source(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "nuvo-main", "provider": "nuvo", "base_url": url,
        "license_key": "license_simulated", "auth_identifier": "ops@example.com",
    } | changes  # fmt: skip


async def test_pages_through_read_all_with_one_cached_token(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = NuvoSimulator()
    ids = [sim.start() for _ in range(7)]
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, page_size=3)
        )
        assert await one_round(settings) == []
        assert sim.requests.count("GET /execution/") == 3  # 3 + 3 + 1
        assert sim.token_requests == 1  # one token for every page of the round
        records = await published(services.kafka_bootstrap, topic)
        assert sorted(r.key.decode() for r in records) == sorted(ids)
        assert all(value(r) == sim.executions[r.key.decode()] for r in records)
        assert {headers(r)["ce_type"] for r in records} == {"com.getnuvo.polled"}
        assert await one_round(settings) == []  # a new process: a new token, nothing new
        assert len(await published(services.kafka_bootstrap, topic)) == 7
    assert sim.token_requests == 2


async def test_an_expired_token_is_requested_again_and_the_round_succeeds(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = NuvoSimulator()
    sim.start()
    async with serving(sim.app()) as url:
        settings = poll_settings(services.kafka_bootstrap, database_url, topic, source(url))
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == []
        sim.expire_tokens()
        sim.evolve()  # the execution ends, a new one starts
        assert await one_round(settings, metrics) == []
    assert sim.token_requests == 2
    assert len(await published(services.kafka_bootstrap, topic)) == 3
    assert sample(metrics, "pipestatus_polls_total", source="nuvo-main", outcome="ok") == 2


async def test_a_wrong_license_key_fails_the_round(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = NuvoSimulator()
    sim.start()
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, license_key="wrong")
        )
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == ["nuvo-main"]
    assert sim.requests == ["POST /auth/access-token"]
    assert sample(metrics, "pipestatus_poll_errors_total", source="nuvo-main", reason="auth") == 1
    assert await published(services.kafka_bootstrap, topic) == []


async def test_a_live_execution_beyond_the_pages_is_read_by_id_and_published_as_returned(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = NuvoSimulator()
    old = sim.start()
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, page_size=2, max_pages=1)
        )
        assert await one_round(settings) == []
        sim.start()
        sim.start()  # `old` falls off the only page read
        sim.finish(old, failed=True)
        assert await one_round(settings) == []
    assert f"GET /execution/{old}" in sim.requests
    records = await published(services.kafka_bootstrap, topic)
    assert len(records) == 4
    by_id = [r for r in records if r.key.decode() == old][-1]
    assert value(by_id) == {"data": sim.executions[old]}  # the by-id response, as returned
    (observation,) = parse_record(by_id.value, Provider.nuvo).observations
    assert observation.state.value == "failed"


async def test_a_fix_after_the_grace_window_reopens_the_run_as_a_new_attempt(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = NuvoSimulator()
    execution = sim.start()
    sim.finish(execution, failed=True)
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url), grace_s=0
        )
        assert await one_round(settings) == []
        assert await one_round(settings) == []  # past grace, still listed: kept, unchanged
        [row] = await fetch(database_url, "SELECT run_id, ended_seen_at FROM poll_runs")
        assert row["ended_seen_at"] is not None
        sim.fix(execution)
        assert await one_round(settings) == []
        sim.finish(execution)
        assert await one_round(settings) == []
    records = await published(services.kafka_bootstrap, topic)
    attempts = [
        (o.attempt, o.state.value)
        for r in records
        for o in parse_record(r.value, Provider.nuvo).observations
    ]
    assert attempts == [(1, "failed"), (2, "running"), (2, "succeeded")]
