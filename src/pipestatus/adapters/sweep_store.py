"""The sweep's statements: stuck-run candidates, Alertmanager re-sends, state gauges.

A mixin of ``PgUnitOfWork``: it runs on the unit of work's connection, so the sweep's
reads, alert writes and marks commit together (docs/architecture.md, alerts).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pipestatus.adapters import alert_store
from pipestatus.adapters.rows import row_to_observation
from pipestatus.adapters.sql import Connection
from pipestatus.domain.alerting import AlertState
from pipestatus.domain.observation import Observation

_SWEEP_LOCK = 0x73776565_70  # any constant shared by every pipestatus process
_STUCK_CANDIDATES = """
SELECT r.* FROM runs r
WHERE r.state IN ('queued', 'running')
  AND r.progressed_at < now() - make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM alert_state a
                  WHERE a.rule = 'PipelineRunStuck' AND a.provider = r.provider
                    AND a.run_id = r.run_id AND a.status = 'firing')
ORDER BY r.progressed_at
LIMIT $2
"""
_STILL_STUCK = """
SELECT provider, run_id FROM runs
WHERE (provider, run_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
  AND state IN ('queued', 'running') AND progressed_at < now() - make_interval(secs => $3)
"""
_DUE_RESENDS = """
SELECT * FROM alert_state
WHERE status = 'firing'
  AND (last_sent_at IS NULL OR last_sent_at < now() - make_interval(secs => $1))
ORDER BY dedup_key
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
_MARK_SENT = "UPDATE alert_state SET last_sent_at = now() WHERE dedup_key = ANY($1::text[])"
_RUN_COUNTS = "SELECT provider, state, count(*) AS n FROM runs GROUP BY provider, state"
_FIRING = "SELECT rule, count(*) AS n FROM alert_state WHERE status = 'firing' GROUP BY rule"


class SweepStatements:
    """The sweep's statements, on the unit of work's connection (``_db``)."""

    _db: Connection

    async def try_sweep_lock(self) -> bool:
        """True if this transaction may sweep; another worker holds it otherwise."""
        return bool(await self._db.fetchval("SELECT pg_try_advisory_xact_lock($1)", _SWEEP_LOCK))

    async def stuck_candidates(
        self, quiet_for_s: float, limit: int
    ) -> list[tuple[Observation, datetime]]:
        """Open runs without progress for ``quiet_for_s`` and no firing stuck alert."""
        rows = await self._db.fetch(_STUCK_CANDIDATES, quiet_for_s, limit)
        return [(row_to_observation(row), row["progressed_at"]) for row in rows]

    async def still_stuck(
        self, keys: Sequence[tuple[str, str]], quiet_for_s: float
    ) -> set[tuple[str, str]]:
        """Of ``(provider, run_id)`` keys, those still open and quiet (read after locking)."""
        rows = await self._db.fetch(
            _STILL_STUCK, [p for p, _ in keys], [r for _, r in keys], quiet_for_s
        )
        return {(row["provider"], row["run_id"]) for row in rows}

    async def due_resends(self, interval_s: float, limit: int) -> list[AlertState]:
        """Firing alerts last sent over ``interval_s`` ago, locked for this transaction."""
        rows = await self._db.fetch(_DUE_RESENDS, interval_s, limit)
        return [alert_store.state_from_row(row) for row in rows]

    async def mark_alerts_sent(self, dedup_keys: Sequence[str]) -> None:
        await self._db.execute(_MARK_SENT, list(dedup_keys))

    async def enqueue_alerts(
        self, notices: Sequence[tuple[dict[str, Any], str]], receivers: Sequence[str]
    ) -> int:
        return await alert_store.enqueue(self._db, notices, receivers)

    async def run_counts(self) -> list[tuple[str, str, int]]:
        """``(provider, state, runs)`` for the runs gauge."""
        return [(r["provider"], r["state"], r["n"]) for r in await self._db.fetch(_RUN_COUNTS)]

    async def firing_counts(self) -> dict[str, int]:
        """Firing alerts per rule."""
        return {row["rule"]: row["n"] for row in await self._db.fetch(_FIRING)}
