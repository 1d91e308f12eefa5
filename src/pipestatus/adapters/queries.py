"""Read-side queries for the CLI (runs, transitions, dead letters) and dead-letter replay."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipestatus.adapters.postgres import PgStore, map_pg_errors, row_to_observation
from pipestatus.intake import InboundRecord, Rejected, Routing, prepare
from pipestatus.service import Alerting, BatchReport, apply_prepared, storable_text
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
_OPEN_DEAD_LETTERS = """
SELECT * FROM dead_letters
WHERE replayed_at IS NULL
  AND (cardinality($1::bigint[]) = 0 OR id = ANY($1))
  AND ($2::text IS NULL OR reason = $2)
ORDER BY id
FOR UPDATE SKIP LOCKED
"""
_MARK_REPLAYED = """
UPDATE dead_letters SET replayed_at = now(), replay_result = $2 WHERE id = $1
"""
_NOTE_STILL_FAILING = """
UPDATE dead_letters SET replay_result = $2, reason = $3, field_path = $4, message = $5
WHERE id = $1
"""


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


@dataclass
class ReplayReport:
    applied: int = 0
    duplicate: int = 0
    stale: int = 0
    still_failing: int = 0


async def replay_dead_letters(
    store: PgStore,
    routing: Routing,
    *,
    ids: list[int],
    reason: str | None,
    alerting: Alerting | None = None,
) -> ReplayReport:
    """Re-runs validation on open dead letters with today's code; applies what passes.

    Everything happens in one transaction: the applied effects and the ``replayed_at``
    marks commit together, so a replay interrupted halfway can simply be run again.
    """
    summary = ReplayReport()
    async with store.unit_of_work() as uow:
        rows = await uow.connection.fetch(_OPEN_DEAD_LETTERS, ids, reason)
        prepared = [(row, prepare(_record(row), routing)) for row in rows]
        report = BatchReport()
        passing = [(row, item) for row, item in prepared if not isinstance(item, Rejected)]
        await apply_prepared(uow, [item for _, item in passing], report, alerting)
        for (row, _item), result in zip(passing, report.results, strict=True):
            await uow.connection.execute(_MARK_REPLAYED, row["id"], result.outcome.value)
            setattr(summary, result.outcome.value, getattr(summary, result.outcome.value) + 1)
        for row, item in prepared:
            if isinstance(item, Rejected):
                summary.still_failing += 1
                error = item.error
                await uow.connection.execute(
                    _NOTE_STILL_FAILING, row["id"], "still_failing", error.reason,
                    storable_text(error.path[:500]), storable_text(error.detail[:2000]),
                )  # fmt: skip
    return summary


def _record(row: Any) -> InboundRecord:
    headers = tuple(_header(h) for h in json.loads(row["headers"]))
    return InboundRecord(
        topic=row["source_topic"],
        partition=row["source_partition"],
        offset=row["source_offset"],
        key=row["record_key"],
        value=row["raw_value"],
        headers=headers,
    )


def _header(stored: dict[str, str]) -> tuple[str, bytes]:
    """A dead letter's header back as the broker delivered it (see ``service._header_json``)."""
    if "key" in stored:
        name = stored["key"]
    else:
        name = bytes.fromhex(stored["key_hex"]).decode("utf-8", "surrogateescape")
    value = stored["value"].encode() if "value" in stored else bytes.fromhex(stored["hex"])
    return name, value


def _text_or_hex(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + raw.hex()


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
