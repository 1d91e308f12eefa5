"""Metrics, health endpoints, stuck-run alerts and a database outage, on real services."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime

import pytest

from pipestatus.adapters.metrics import Metrics
from pipestatus.domain.states import Provider
from pipestatus_dev.embedded import EmbeddedPostgres
from tests.integration.db_tools import fetch
from tests.integration.kafka_tools import (
    Message,
    create_topics,
    produce,
    topic_for,
    unique_topics,
    worker_settings,
)
from tests.integration.worker_tools import eventually, get, running_worker

pytestmark = [pytest.mark.services]


def pull(run: str, status: str, minute: int = 0) -> Message:
    document = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_OID, run)),
        "companyId": str(uuid.uuid5(uuid.NAMESPACE_OID, "company")),
        "connectionId": str(uuid.uuid5(uuid.NAMESPACE_OID, "connection")),
        "dataType": "invoices",
        "status": status,
        "requested": datetime(2026, 7, 14, 9, minute, tzinfo=UTC).isoformat(),
        "progress": 50,
        "isCompleted": status == "Complete",
        "isErrored": status.endswith("Error"),
    }
    if status in ("Complete", "FetchError"):
        document["completed"] = datetime(2026, 7, 14, 9, minute + 1, tzinfo=UTC).isoformat()
    return Message(json.dumps(document).encode())


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: install the Debian package `prometheus` (see .ci/run)")
    return found


async def test_metrics_and_probes_are_served_and_pass_promtool(services, database_url) -> None:
    """/metrics passes `promtool check metrics`; /healthz and /readyz answer 200 when ready."""
    topics = unique_topics()
    await create_topics(services.kafka_bootstrap, topics)
    topic = topic_for(topics, Provider.codat)
    await produce(
        services.kafka_bootstrap, topic, [pull("m1", "Queued"), pull("m1", "Complete", 5),
                                          Message(b"not json")]
    )  # fmt: skip
    metrics = Metrics()
    settings = worker_settings(services.kafka_bootstrap, database_url, topics)
    async with running_worker(settings, metrics) as server:

        async def consumed() -> bool:
            text = (await get(f"{server.url}/metrics")).text
            return (
                'pipestatus_records_consumed_total{outcome="dead_letter",provider="codat"} 1.0'
                in text
            )

        await eventually(consumed, what="the three records to be counted")
        assert (await get(f"{server.url}/healthz")).status_code == 200

        async def ready() -> bool:
            return (await get(f"{server.url}/readyz")).status_code == 200

        await eventually(ready, what="/readyz to turn ready")
        scraped = (await get(f"{server.url}/metrics")).text
    for name in (
        "pipestatus_transitions_total", "pipestatus_dead_letters_total",
        "pipestatus_batch_duration_seconds_bucket", "pipestatus_event_delay_seconds_bucket",
        "pipestatus_consumer_lag_messages", "pipestatus_build_info",
        "pipestatus_run_duration_seconds_bucket",
    ):  # fmt: skip
        assert name in scraped, name
    assert 'reason="not_json"' in scraped
    assert "run_id" not in scraped, "no unbounded label values"
    check = await asyncio.to_thread(
        subprocess.run,
        [promtool(), "check", "metrics"],
        input=scraped.encode(),
        capture_output=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


async def test_stuck_run_fires_and_resolves_when_the_run_ends(services, database_url) -> None:
    """A run without progress past its threshold fires PipelineRunStuck; its end resolves it."""
    topics = unique_topics()
    await create_topics(services.kafka_bootstrap, topics)
    topic = topic_for(topics, Provider.codat)
    settings = worker_settings(services.kafka_bootstrap, database_url, topics)
    settings = settings.model_copy(
        update={
            "alerts": settings.alerts.model_copy(
                update={
                    "stuck_after_s": {Provider.codat: 1.0},
                    "sweep_interval_s": 0.2,
                    "receivers": [],
                }
            )
        }
    )
    await produce(services.kafka_bootstrap, topic, [pull("s1", "Fetching")])
    query = "SELECT status FROM alert_state WHERE rule = 'PipelineRunStuck'"
    async with running_worker(settings):

        async def status(expected: str) -> bool:
            rows = await fetch(database_url, query)
            return [r["status"] for r in rows] == [expected]

        await eventually(lambda: status("firing"), what="PipelineRunStuck to fire")
        await produce(services.kafka_bootstrap, topic, [pull("s1", "Complete", 9)])
        await eventually(lambda: status("resolved"), what="PipelineRunStuck to resolve")
    [state] = await fetch(
        database_url, "SELECT labels FROM alert_state WHERE rule = 'PipelineRunStuck'"
    )
    assert json.loads(state["labels"])["run_id"] == str(uuid.uuid5(uuid.NAMESPACE_OID, "s1"))


async def test_readyz_turns_unready_during_a_database_outage_and_nothing_is_lost(
    services,
) -> None:
    """PostgreSQL stopped mid-run: /readyz says 503, the worker retries, then catches up."""
    topics = unique_topics()
    await create_topics(services.kafka_bootstrap, topics)
    topic = topic_for(topics, Provider.codat)
    with EmbeddedPostgres() as database:
        settings = worker_settings(services.kafka_bootstrap, database.dsn, topics)
        await produce(
            services.kafka_bootstrap, topic, [pull(f"o{n}", "Complete") for n in range(5)]
        )
        async with running_worker(settings) as server:

            async def readiness(code: int) -> bool:
                return (await get(f"{server.url}/readyz")).status_code == code

            async def runs(count: int) -> bool:
                try:
                    return len(await fetch(database.dsn, "SELECT run_id FROM runs")) == count
                except OSError:
                    return False

            await eventually(lambda: runs(5), what="the first runs")
            await eventually(lambda: readiness(200), what="ready before the outage")
            database.interrupt()
            await eventually(lambda: readiness(503), what="/readyz to report the outage")
            body = (await get(f"{server.url}/readyz")).text
            assert "database unreachable" in body
            await produce(
                services.kafka_bootstrap, topic, [pull(f"o{n}", "Complete") for n in range(5, 12)]
            )
            database.resume()
            await eventually(lambda: readiness(200), what="/readyz to recover")
            await eventually(lambda: runs(12), what="events produced during the outage")
        letters = await fetch(database.dsn, "SELECT count(*) AS n FROM dead_letters")
        assert letters[0]["n"] == 0
