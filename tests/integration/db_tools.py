"""Reading a test database's final state, for comparisons between runs of the worker."""

from __future__ import annotations

from typing import Any

import asyncpg

#: Columns that depend on wall-clock time or arrival order, not on the events.
_VOLATILE_RUN = {"created_at", "updated_at", "progressed_at"}


async def snapshot(url: str) -> dict[str, Any]:
    """Runs, transitions, dead letters and offsets, in a form two databases can compare."""
    connection = await asyncpg.connect(url)
    try:
        runs = [
            {k: v for k, v in dict(row).items() if k not in _VOLATILE_RUN}
            for row in await connection.fetch("SELECT * FROM runs ORDER BY provider, run_id")
        ]
        transitions = [
            dict(row)
            for row in await connection.fetch(
                "SELECT provider, run_id, from_state, to_state, from_phase, to_phase, attempt,"
                " provider_status, event_id, occurred_at, source_topic, source_partition,"
                " source_offset FROM run_transitions ORDER BY provider, run_id, id"
            )
        ]
        letters = [
            dict(row)
            for row in await connection.fetch(
                "SELECT source_topic, source_partition, source_offset, reason, stage,"
                " field_path, raw_value FROM dead_letters"
                " ORDER BY source_topic, source_partition, source_offset"
            )
        ]
        events = await connection.fetchval("SELECT count(*) FROM processed_events")
        return {"runs": runs, "transitions": transitions, "dead_letters": letters, "events": events}
    finally:
        await connection.close()


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()
