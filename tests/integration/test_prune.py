"""``pipestatus prune`` on a real PostgreSQL: exactly the old, finished history goes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from pipestatus.adapters.postgres import PgStore
from pipestatus.adapters.prune import prune

pytestmark = pytest.mark.services

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
NEW = NOW - timedelta(days=1)


async def _seed(url: str) -> None:
    async with PgStore(url, max_size=1) as store:
        await store.migrate()
    connection = await asyncpg.connect(url)
    try:
        for run_id, state in (("done", "succeeded"), ("open", "running")):
            await connection.execute(
                "INSERT INTO runs (provider, run_id, pipeline_id, attempt, state, kind, event_id)"
                " VALUES ('codat', $1, 'p', 1, $2, 'k', $1)",
                run_id,
                state,
            )
            # three old transitions and one recent one per run, in id order
            for n, age in enumerate((OLD, OLD, OLD, NEW)):
                await connection.execute(
                    "INSERT INTO run_transitions (provider, run_id, pipeline_id, to_state,"
                    " attempt, event_id, recorded_at) VALUES ('codat', $1, 'p', $2, 1, $3, $4)",
                    run_id,
                    state,
                    f"{run_id}-{n}",
                    age,
                )
        # a finished run whose only transitions are old: its newest one stays
        await connection.execute(
            "INSERT INTO runs (provider, run_id, pipeline_id, attempt, state, kind, event_id)"
            " VALUES ('codat', 'ancient', 'p', 1, 'failed', 'k', 'ancient')"
        )
        for n in range(2):
            await connection.execute(
                "INSERT INTO run_transitions (provider, run_id, pipeline_id, to_state, attempt,"
                " event_id, recorded_at) VALUES ('codat', 'ancient', 'p', 'failed', 1, $1, $2)",
                f"ancient-{n}",
                OLD,
            )
        for n, age in enumerate((OLD, OLD, NEW)):
            await connection.execute(
                "INSERT INTO processed_events (event_id, provider, first_seen_at)"
                " VALUES ($1, 'codat', $2)",
                f"event-{n}",
                age,
            )
        letters = [("replayed-old", OLD), ("replayed-new", NEW), ("open-old", None)]
        for offset, (name, replayed) in enumerate(letters):
            await connection.execute(
                "INSERT INTO dead_letters (source_topic, source_partition, source_offset,"
                " value_size, value_sha256, stage, reason, message, first_seen_at, replayed_at)"
                " VALUES ($1, 0, $2, 0, '', 'decode', 'not_json', '', $3, $4)",
                name,
                offset,
                OLD,
                replayed,
            )
        outbox = [
            ("delivered-old", OLD, None),
            ("gave-up-old", None, OLD),
            ("delivered-new", NEW, None),
            ("pending-old", None, None),
        ]
        for key, delivered, gave_up in outbox:
            await connection.execute(
                "INSERT INTO alert_outbox (dedup_key, receiver, action, payload, created_at,"
                " delivered_at, gave_up_at) VALUES ($1, 'r', 'trigger', '{}', $2, $3, $4)",
                key,
                OLD,
                delivered,
                gave_up,
            )
        await connection.execute(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, updated_at)"
            " VALUES ('g', 'runs.codat', 0, 7, $1)",
            OLD,
        )
    finally:
        await connection.close()


async def _remaining(url: str) -> dict[str, Any]:
    connection = await asyncpg.connect(url)
    try:

        async def column(query: str) -> list[Any]:
            return [row[0] for row in await connection.fetch(query)]

        return {
            "runs": await column("SELECT run_id FROM runs ORDER BY run_id"),
            "transitions": await column("SELECT event_id FROM run_transitions ORDER BY event_id"),
            "events": await column("SELECT event_id FROM processed_events ORDER BY event_id"),
            "letters": await column("SELECT source_topic FROM dead_letters ORDER BY 1"),
            "outbox": await column("SELECT dedup_key FROM alert_outbox ORDER BY 1"),
            "offsets": await column("SELECT next_offset FROM consumer_offsets"),
        }
    finally:
        await connection.close()


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIPESTATUS_DATABASE__URL": url}
    return subprocess.run(
        [sys.executable, "-m", "pipestatus", "prune", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_prune_deletes_exactly_the_old_finished_history(database_url: str) -> None:
    await _seed(database_url)
    before = await _remaining(database_url)

    dry = _cli(database_url, "--older-than", "30d", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout.splitlines()[-1]) | {"cutoff": None} == {
        "cutoff": None,
        "dry_run": True,
        "run_transitions": 4,  # done-0..2 and ancient-0 (open's are kept: not terminal)
        "processed_events": 2,
        "dead_letters": 1,
        "alert_outbox": 2,
    }
    assert await _remaining(database_url) == before  # a dry run deletes nothing

    done = _cli(database_url, "--older-than", "30d", "--batch-size", "1", "--json")
    assert done.returncode == 0, done.stderr
    assert "run_transitions: deleted 4" in done.stdout
    assert await _remaining(database_url) == {
        "runs": ["ancient", "done", "open"],
        # the newest transition of a finished run stays, however old; a running run's all
        "transitions": ["ancient-1", "done-3", "open-0", "open-1", "open-2", "open-3"],
        "events": ["event-2"],
        "letters": ["open-old", "replayed-new"],
        "outbox": ["delivered-new", "pending-old"],
        "offsets": [7],
    }


async def test_prune_runs_beside_a_writer_without_blocking_it(database_url: str) -> None:
    """Small batches while another connection keeps inserting and updating the same run:
    both finish, the writer's new rows all stay."""
    await _seed(database_url)
    connection = await asyncpg.connect(database_url)
    try:

        async def writer() -> None:
            for n in range(200):
                async with connection.transaction():
                    await connection.execute(
                        "INSERT INTO run_transitions (provider, run_id, pipeline_id, to_state,"
                        " attempt, event_id) VALUES ('codat', 'done', 'p', 'succeeded', 1, $1)",
                        f"live-{n}",
                    )
                    await connection.execute(
                        "UPDATE runs SET updated_at = now() WHERE run_id = 'done'"
                    )

        async with PgStore(database_url, max_size=1) as store:
            counts, _ = await asyncio.wait_for(
                asyncio.gather(prune_in_small_batches(store), writer()), timeout=60
            )
        assert counts["run_transitions"] == 4
        live = await connection.fetchval(
            "SELECT count(*) FROM run_transitions WHERE event_id LIKE 'live-%'"
        )
        assert live == 200
    finally:
        await connection.close()


async def prune_in_small_batches(store: PgStore) -> dict[str, int]:
    return await prune(store, datetime.now(UTC) - timedelta(days=30), batch_size=1)
