"""Alert state and outbox rows in PostgreSQL: written inside the batch's transaction,
claimed and marked by the dispatcher in its own (``OutboxStatements``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pipestatus.adapters.receivers import OutboxItem
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
_CLAIM_DUE = """
SELECT o.id, o.dedup_key, o.receiver, o.action, o.payload, o.attempts,
       o.created_at < now() - make_interval(secs => $2) AS expired
FROM alert_outbox o
WHERE o.delivered_at IS NULL AND o.gave_up_at IS NULL AND o.next_attempt_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM alert_outbox p
      WHERE p.dedup_key = o.dedup_key AND p.receiver = o.receiver AND p.id < o.id
        AND p.delivered_at IS NULL AND p.gave_up_at IS NULL)
ORDER BY o.id
LIMIT $1
FOR UPDATE OF o SKIP LOCKED
"""
_RECORD = """
UPDATE alert_outbox o SET
    attempts = o.attempts + t.tried,
    last_error = COALESCE(t.error, o.last_error),
    delivered_at = CASE WHEN t.result = 'delivered' THEN clock_timestamp() END,
    gave_up_at = CASE WHEN t.result = 'gave_up' THEN clock_timestamp() END,
    next_attempt_at = CASE WHEN t.result = 'failed'
                           THEN clock_timestamp() + make_interval(secs => t.delay)
                           ELSE o.next_attempt_at END
FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::float8[])
     AS t(id, result, tried, error, delay)
WHERE o.id = t.id
"""
_NO_IDLE_LIMIT = "SET LOCAL idle_in_transaction_session_timeout = 0"
_ENQUEUE = """
INSERT INTO alert_outbox (dedup_key, receiver, action, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])
"""


Result = Literal["delivered", "failed", "gave_up"]


@dataclass(frozen=True, slots=True)
class DueAlert:
    """An outbox row claimed for delivery; ``expired`` once older than the give-up age."""

    item: OutboxItem
    expired: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one delivery attempt of an outbox row came to."""

    row: OutboxItem
    result: Result
    tried: int = 1
    error: str | None = None
    delay_s: float = 0.0


class OutboxStatements:
    """The dispatcher's statements, on the unit of work's connection (``_db``)."""

    _db: Connection

    async def allow_idling(self) -> None:
        """Lifts the pool's idle-in-transaction limit for this transaction only."""
        await self._db.execute(_NO_IDLE_LIMIT)

    async def claim_due_alerts(self, limit: int, give_up_after_s: float) -> list[DueAlert]:
        """Locks up to ``limit`` due rows (``SKIP LOCKED``) for this transaction."""
        rows = await self._db.fetch(_CLAIM_DUE, limit, give_up_after_s)
        return [DueAlert(_item(row), row["expired"]) for row in rows]

    async def record_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._db.execute(
                _RECORD,
                [d.row.id for d in deliveries],
                [d.result for d in deliveries],
                [d.tried for d in deliveries],
                [d.error for d in deliveries],
                [d.delay_s for d in deliveries],
            )

    async def outbox_backlog(self) -> int:
        """Rows neither delivered nor given up (for a gauge)."""
        count: int = await self._db.fetchval(OUTBOX_BACKLOG)
        return count


def _item(record: Any) -> OutboxItem:
    payload = record["payload"]
    return OutboxItem(
        id=record["id"],
        dedup_key=record["dedup_key"],
        receiver=record["receiver"],
        action=record["action"],
        payload=json.loads(payload) if isinstance(payload, str) else payload,
        attempts=record["attempts"],
    )


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
