"""Read-side queries for the CLI (runs, transitions, dead letters)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipestatus.adapters.postgres import PgStore, map_pg_errors
from pipestatus.adapters.rows import row_to_observation
from pipestatus.views import ObservationView, RunView, TransitionView

_LIST_RUNS = """
SELECT * FROM runs
WHERE ($1::text IS NULL OR provider = $1)
  AND ($2::text IS NULL OR state = $2)
  AND ($3::text IS NULL OR pipeline_id = $3)
  AND ($4::timestamptz IS NULL OR updated_at >= $4)
ORDER BY updated_at DESC, provider, run_id
LIMIT $5
"""
_GET_RUN = "SELECT * FROM runs WHERE provider = $1 AND run_id = $2"
_RUN_TRANSITIONS = """
SELECT * FROM run_transitions WHERE provider = $1 AND run_id = $2 ORDER BY id
"""
_LIST_DEAD_LETTERS = """
SELECT id, provider, source_topic, source_partition, source_offset, value_size, value_truncated,
       stage, reason, field_path, message, first_seen_at, replayed_at, replay_result
FROM dead_letters
WHERE ($1::text IS NULL OR reason = $1) AND ($2::bool OR replayed_at IS NULL)
ORDER BY id DESC
LIMIT $3
"""
_GET_DEAD_LETTER = "SELECT * FROM dead_letters WHERE id = $1"


@dataclass(frozen=True, slots=True)
class RunFilter:
    provider: str | None = None
    state: str | None = None
    pipeline: str | None = None
    since: datetime | None = None
    limit: int = 100


def run_view(row: Any) -> RunView:
    base = ObservationView.of(row_to_observation(row))
    return RunView(
        **base.model_dump(),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        progressed_at=row["progressed_at"],
    )


async def list_runs(store: PgStore, where: RunFilter) -> list[RunView]:
    with map_pg_errors():
        rows = await store.pool.fetch(
            _LIST_RUNS, where.provider, where.state, where.pipeline, where.since, where.limit
        )
    return [run_view(row) for row in rows]


async def show_run(
    store: PgStore, provider: str, run_id: str
) -> tuple[RunView, list[TransitionView]] | None:
    with map_pg_errors():
        row = await store.pool.fetchrow(_GET_RUN, provider, run_id)
        if row is None:
            return None
        transitions = await store.pool.fetch(_RUN_TRANSITIONS, provider, run_id)
    return run_view(row), [TransitionView.model_validate(dict(t)) for t in transitions]


async def list_dead_letters(
    store: PgStore, *, reason: str | None, include_replayed: bool, limit: int
) -> list[dict[str, Any]]:
    with map_pg_errors():
        rows = await store.pool.fetch(_LIST_DEAD_LETTERS, reason, include_replayed, limit)
    return [_jsonable(dict(row)) for row in rows]


async def show_dead_letter(store: PgStore, letter_id: int) -> dict[str, Any] | None:
    with map_pg_errors():
        row = await store.pool.fetchrow(_GET_DEAD_LETTER, letter_id)
    if row is None:
        return None
    letter = _jsonable(dict(row))
    letter["headers"] = json.loads(row["headers"])
    raw: bytes | None = row["raw_value"]
    letter.pop("raw_value", None)
    letter.pop("record_key", None)
    letter["key"] = _text_or_hex(row["record_key"])
    letter["value"] = _text_or_hex(raw)
    return letter


def _text_or_hex(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + raw.hex()


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
