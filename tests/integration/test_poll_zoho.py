"""``pipestatus poll`` against the Zoho DataPrep simulator: OAuth refresh, templates, grace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipestatus.adapters.polling import PollMetrics
from pipestatus.poller import run_poller
from pipestatus.settings import Settings
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.simulators import ZohoSimulator
from pipestatus_dev.simulators.zoho import JOB_URL, JOBS_URL, RUNNING, SUCCESS
from tests.integration.db_tools import fetch
from tests.integration.poll_tools import (
    fresh_topic,
    one_round,
    poll_settings,
    published,
    sample,
    serving,
    value,
)
from tests.integration.worker_tools import eventually

pytestmark = [pytest.mark.services]
PIPELINE = "2650000000418005"


@pytest.fixture
async def topic(services: TestServices) -> str:
    return await fresh_topic(services.kafka_bootstrap, "zoho_dataprep")


def source(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "zoho-eu", "provider": "zoho_dataprep", "base_url": url, "accounts_url": url,
        "client_id": "1000.SIMULATED", "client_secret": "zoho_client_secret",
        "refresh_token": "1000.refresh.simulated", "job_url": JOB_URL, "jobs_url": JOBS_URL,
        "jobs_field": "jobs", "pipeline_ids": [PIPELINE], "interval_s": 0.2,
    } | changes  # fmt: skip


async def test_listed_jobs_are_published_as_returned_then_only_changes(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = ZohoSimulator()
    job = sim.start(PIPELINE)
    async with serving(sim.app()) as url:
        settings = poll_settings(services.kafka_bootstrap, database_url, topic, source(url))
        assert await one_round(settings) == []
        assert await one_round(settings) == []
        sim.move(job, RUNNING)
        assert await one_round(settings) == []
        assert await one_round(settings) == []
    records = await published(services.kafka_bootstrap, topic)
    assert [value(r)["pipelinerun"]["execution_status"] for r in records] == [2, 0]
    assert [r.key.decode() for r in records] == [job, job]
    assert f"GET {JOBS_URL.format(pipeline_id=PIPELINE)}" in sim.requests


async def _loop(settings: Settings, until: Any, metrics: PollMetrics) -> None:
    """``pipestatus poll`` until SIGTERM, stopped once ``until()`` holds."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_poller(settings, stop=stop, metrics=metrics))

    async def done() -> bool:
        assert not task.done(), "the poller ended by itself"
        return bool(until())

    try:
        await eventually(done, within_s=30, what="poll rounds")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_the_access_token_is_cached_renewed_at_expiry_and_after_a_revocation(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = ZohoSimulator(expires_in_s=3600)
    sim.start(PIPELINE)
    async with serving(sim.app()) as url:
        settings = poll_settings(services.kafka_bootstrap, database_url, topic, source(url))
        metrics = PollMetrics()

        def rounds() -> float:
            return sample(metrics, "pipestatus_polls_total", source="zoho-eu", outcome="ok")

        await _loop(settings, lambda: rounds() >= 5, metrics)
        assert len(sim.token_requests) == 1  # five rounds, one token

        revoked: list[float] = []

        def revoke_once_then_two_more_rounds() -> bool:
            if not revoked and rounds() >= 7:
                sim.expire_tokens()  # revoked mid-run: a 401, then one new token
                revoked.append(rounds())
            return bool(revoked) and rounds() >= revoked[0] + 2

        await _loop(settings, revoke_once_then_two_more_rounds, metrics)
        assert len(sim.token_requests) == 3  # a new process's token, then the renewal

        sim.expires_in_s = 61  # cached for 61 s less the minute of margin: 1 s
        before = len(sim.token_requests)
        await _loop(settings, lambda: len(sim.token_requests) >= before + 3, metrics)
    assert sample(metrics, "pipestatus_polls_total", source="zoho-eu", outcome="failed") == 0


async def test_a_refused_refresh_token_fails_the_round(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = ZohoSimulator()
    sim.start(PIPELINE)
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, refresh_token="revoked")
        )
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == ["zoho-eu"]
    assert sample(metrics, "pipestatus_poll_errors_total", source="zoho-eu", reason="auth") == 1
    assert sim.requests == []  # no API request without a token
    assert await published(services.kafka_bootstrap, topic) == []


async def test_an_ended_job_past_the_grace_window_is_no_longer_read(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = ZohoSimulator()
    job = sim.start(PIPELINE)
    sim.move(job, SUCCESS)
    summary = f"GET {JOB_URL.format(job_id=job)}"
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url), grace_s=0
        )
        assert await one_round(settings) == []
        assert sim.requests.count(summary) == 1
        assert await one_round(settings) == []
        assert await one_round(settings) == []
    assert sim.requests.count(summary) == 1  # ended, past grace: not read again
    assert len(await fetch(database_url, "SELECT * FROM poll_runs")) == 1  # still watched
    assert len(await published(services.kafka_bootstrap, topic)) == 1


async def test_an_api_error_report_fails_the_round_and_keeps_the_job(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = ZohoSimulator()
    job = sim.start(PIPELINE)
    async with serving(sim.app()) as url:
        settings = poll_settings(services.kafka_bootstrap, database_url, topic, source(url))
        assert await one_round(settings) == []
        sim.failing.add(job)
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == ["zoho-eu"]
        sim.failing.clear()
        assert await one_round(settings) == []  # unchanged: nothing republished
    assert sample(metrics, "pipestatus_poll_errors_total", source="zoho-eu", reason="api_error")
    assert len(await fetch(database_url, "SELECT * FROM poll_runs")) == 1
    assert len(await published(services.kafka_bootstrap, topic)) == 1
