"""Crash recovery: a worker killed with SIGKILL mid-backlog and restarted loses nothing
and applies nothing twice; its database equals that of an undisturbed run."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from pipestatus.app import run_worker
from pipestatus.domain.states import Provider
from tests.integration.db_tools import fetch, snapshot
from tests.integration.kafka_tools import (
    Message,
    create_topics,
    produce,
    topic_for,
    unique_topics,
    worker_settings,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

RUNS = 2000
LIFE = ["Queued", "Fetching", "Mapping", "Processing"]
T0 = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)


def backlog() -> list[Message]:
    """A run's events keyed by run id (one partition per run), with ~1% poison records."""
    rng = random.Random(42)
    messages = []
    for n in range(RUNS):
        run_id = str(uuid.uuid5(uuid.NAMESPACE_OID, f"crash-{n}"))
        life = [*LIFE, rng.choice(["Complete", "FetchError", "Cancelled"])]
        for minute, status in enumerate(life):
            document = {
                "id": run_id,
                "companyId": str(uuid.uuid5(uuid.NAMESPACE_OID, f"company-{n % 17}")),
                "connectionId": str(uuid.uuid5(uuid.NAMESPACE_OID, "connection")),
                "dataType": "invoices",
                "status": status,
                "requested": (T0 + timedelta(minutes=minute)).isoformat(),
                "progress": 20 * minute,
                "isCompleted": status == "Complete",
                "isErrored": status == "FetchError",
            }
            messages.append(Message(json.dumps(document).encode(), key=run_id.encode()))
        if rng.random() < 0.05:
            messages.append(Message(b"{broken json " + str(n).encode(), key=run_id.encode()))
    return messages


def worker_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPESTATUS_")}
    return env | settings_env


async def progress(url: str, group: str) -> int:
    """Records the group has committed to the database (0 until it has migrated)."""
    try:
        rows = await fetch(
            url,
            "SELECT coalesce(sum(next_offset), 0) AS n FROM consumer_offsets WHERE group_id = $1",
            group,
        )
    except asyncpg.UndefinedTableError:
        return 0
    return int(rows[0]["n"])


async def test_sigkill_mid_backlog_then_restart_equals_an_undisturbed_run(
    services, database_url, second_database_url
) -> None:
    """Two SIGKILLs mid-backlog; after restarts the DB equals an undisturbed worker's DB."""
    topics = unique_topics()
    await create_topics(services.kafka_bootstrap, topics, partitions=3)
    messages = backlog()
    await produce(services.kafka_bootstrap, topic_for(topics, Provider.codat), messages)

    await run_worker(
        worker_settings(services.kafka_bootstrap, database_url, topics), until_idle=True
    )

    group = f"crash-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        {
            "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS": services.kafka_bootstrap,
            "PIPESTATUS_KAFKA__GROUP_ID": group,
            "PIPESTATUS_KAFKA__TOPICS": json.dumps({t: p.value for t, p in topics.items()}),
            "PIPESTATUS_KAFKA__MAX_BATCH_RECORDS": "100",
            "PIPESTATUS_KAFKA__MAX_BATCH_WAIT_MS": "100",
            "PIPESTATUS_DATABASE__URL": second_database_url,
            "PIPESTATUS_WORKER__IDLE_POLLS": "2",
            "PIPESTATUS_HTTP__PORT": "0",
        }
    )
    command = [sys.executable, "-m", "pipestatus", "worker"]
    kill_points = []
    for fraction in (0.2, 0.55):
        worker = await asyncio.create_subprocess_exec(
            *command, env=env, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            async with asyncio.timeout(120):
                while (done := await progress(second_database_url, group)) < fraction * len(
                    messages
                ):
                    assert worker.returncode is None, "worker exited before it was killed"
                    await asyncio.sleep(0.02)
        finally:
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
        kill_points.append(done)
    assert all(0 < point < len(messages) for point in kill_points), kill_points

    finish = await asyncio.to_thread(
        subprocess.run,
        [*command, "--until-idle"],
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert finish.returncode == 0, finish.stderr.decode()[-2000:]

    undisturbed, recovered = await snapshot(database_url), await snapshot(second_database_url)
    assert await progress(second_database_url, group) == len(messages)
    assert len(recovered["runs"]) == RUNS
    assert recovered["runs"] == undisturbed["runs"]
    assert recovered["transitions"] == undisturbed["transitions"]
    assert recovered["dead_letters"] == undisturbed["dead_letters"]
    assert recovered["events"] == undisturbed["events"]
