"""Alert state and outbox rows in PostgreSQL, written inside the batch's transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pipestatus.adapters.sql import Connection, columns
from pipestatus.domain.alerting import AlertChange, AlertState, Rule

_LOCK_KEYS = """
SELECT pg_advisory_xact_lock(k)
FROM (SELECT DISTINCT hashtextextended('alert/' || key, 0) AS k FROM unnest($1::text[]) AS key) s
ORDER BY k
"""
#: Outbox rows neither delivered nor given up: the dispatcher's and the sweep's gauge.
OUTBOX_BACKLOG = (
    "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL"
)
_LOAD = "SELECT * FROM alert_state WHERE dedup_key = ANY($1::text[])"
_UPSERT = """
INSERT INTO alert_state (dedup_key, rule, provider, pipeline_id, run_id, status,
                         consecutive_failures, labels, annotations, started_at, resolved_at,
                         last_success_at, last_failure_at, last_sent_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::int[], $8::jsonb[], $9::jsonb[], $10::timestamptz[],
                     $11::timestamptz[], $12::timestamptz[], $13::timestamptz[],
                     $14::timestamptz[])
ON CONFLICT (dedup_key) DO UPDATE SET
    run_id = EXCLUDED.run_id, status = EXCLUDED.status,
    consecutive_failures = EXCLUDED.consecutive_failures, labels = EXCLUDED.labels,
    annotations = EXCLUDED.annotations, started_at = EXCLUDED.started_at,
    resolved_at = EXCLUDED.resolved_at, last_success_at = EXCLUDED.last_success_at,
    last_failure_at = EXCLUDED.last_failure_at,
    last_sent_at = COALESCE(EXCLUDED.last_sent_at, alert_state.last_sent_at),
    updated_at = now()
"""
_ENQUEUE = """
INSERT INTO alert_outbox (dedup_key, receiver, action, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])
"""


async def lock_and_load(db: Connection, keys: Sequence[str]) -> dict[str, AlertState]:
    """Locks the alert keys for this transaction (workers serialize per alert) and reads them."""
    if not keys:
        return {}
    unique = sorted(set(keys))
    await db.execute(_LOCK_KEYS, unique)
    return {row["dedup_key"]: state_from_row(row) for row in await db.fetch(_LOAD, unique)}


async def write(
    db: Connection, changes: Sequence[AlertChange], receivers: Sequence[str], now: datetime
) -> int:
    """Upserts the final state per key and enqueues one outbox row per receiver per action.

    Returns the number of outbox rows written.
    """
    if not changes:
        return 0
    final: dict[str, AlertChange] = {}
    for change in changes:
        final[change.state.dedup_key] = change
    notified = {c.state.dedup_key for c in changes if c.action is not None}
    rows = [_row(c.state, now if key in notified else None) for key, c in final.items()]
    await db.execute(_UPSERT, *columns(rows, 14))
    # Change order is kept: a resolve and a re-trigger in one batch arrive in that order.
    notices = [(payload(c.state, c.action), c.action) for c in changes if c.action is not None]
    return await enqueue(db, notices, receivers)


async def enqueue(
    db: Connection, notices: Sequence[tuple[dict[str, Any], str]], receivers: Sequence[str]
) -> int:
    """One outbox row per (document, action) per receiver, in order."""
    rows = [
        (document["dedup_key"], receiver, action, json.dumps(document))
        for document, action in notices
        for receiver in receivers
    ]
    if rows:
        await db.execute(_ENQUEUE, *columns(rows, 4))
    return len(rows)


def payload(state: AlertState, action: str) -> dict[str, Any]:
    """The receiver-neutral alert document stored in the outbox."""
    return {
        "rule": state.rule.value,
        "dedup_key": state.dedup_key,
        "labels": dict(state.labels),
        "annotations": dict(state.annotations),
        "starts_at": state.started_at.isoformat(),
        "ends_at": state.resolved_at.isoformat()
        if action == "resolve" and state.resolved_at
        else None,
    }


def _row(s: AlertState, sent_at: datetime | None) -> tuple[Any, ...]:
    return (
        s.dedup_key, s.rule.value, s.provider, s.pipeline_id, s.run_id,
        "firing" if s.firing else "resolved", s.consecutive_failures, json.dumps(dict(s.labels)),
        json.dumps(dict(s.annotations)), s.started_at, s.resolved_at, s.last_success_at,
        s.last_failure_at, sent_at,
    )  # fmt: skip


def state_from_row(row: Any) -> AlertState:
    return AlertState(
        dedup_key=row["dedup_key"],
        rule=Rule(row["rule"]),
        provider=row["provider"],
        pipeline_id=row["pipeline_id"],
        run_id=row["run_id"],
        firing=row["status"] == "firing",
        started_at=row["started_at"],
        consecutive_failures=row["consecutive_failures"],
        labels=json.loads(row["labels"]),
        annotations=json.loads(row["annotations"]),
        last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"],
        resolved_at=row["resolved_at"],
    )
