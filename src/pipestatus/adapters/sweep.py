"""The periodic sweep: stuck runs, Alertmanager re-sends, and the state gauges.

Safe with several workers: a transaction-scoped advisory lock lets one sweep at a time,
and a candidate run is re-checked after its alert key is locked, so a run that progressed
meanwhile never fires PipelineRunStuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from pipestatus.adapters import alert_store
from pipestatus.adapters.metrics import Metrics
from pipestatus.adapters.postgres import PgStore, map_pg_errors, row_to_observation
from pipestatus.adapters.sql import Connection
from pipestatus.domain.alerting import AlertChange, Rule, dedup_key, stuck
from pipestatus.domain.states import Provider
from pipestatus.errors import InfrastructureError
from pipestatus.settings import AlertSettings

logger = logging.getLogger(__name__)

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


@dataclass
class SweepReport:
    stuck_fired: int = 0
    resent: int = 0
    outbox_rows: int = 0


class Sweeper:
    """Finds stuck runs and re-sends firing alerts to Alertmanager receivers."""

    def __init__(
        self,
        store: PgStore,
        settings: AlertSettings,
        *,
        receivers: tuple[str, ...],
        resend_receivers: tuple[str, ...],
        metrics: Metrics | None = None,
        batch_limit: int = 500,
    ) -> None:
        self._store = store
        self._settings = settings
        self._receivers = receivers
        self._resend_receivers = resend_receivers
        self._metrics = metrics
        self._limit = batch_limit

    def threshold_s(self, provider: str, pipeline_id: str) -> float:
        override = self._settings.stuck_overrides_s.get(f"{provider}/{pipeline_id}")
        if override is not None:
            return override
        return self._settings.stuck_after_s.get(Provider(provider), 3600.0)

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps every ``sweep_interval_s`` until ``stop``; database trouble only delays it."""
        while not stop.is_set():
            try:
                await self.sweep_once()
                await self.refresh_gauges()
            except InfrastructureError as exc:
                logger.warning("sweep skipped: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.sweep_interval_s):
                    await stop.wait()

    async def sweep_once(self) -> SweepReport:
        report = SweepReport()
        now = datetime.now(UTC)
        floor = min(
            [*self._settings.stuck_after_s.values(), *self._settings.stuck_overrides_s.values()],
            default=3600.0,
        )
        with map_pg_errors():
            async with self._store.unit_of_work() as uow:
                db = uow.connection
                if not await db.fetchval("SELECT pg_try_advisory_xact_lock($1)", _SWEEP_LOCK):
                    return report  # another worker is sweeping
                candidates = [
                    row
                    for row in await db.fetch(_STUCK_CANDIDATES, floor, self._limit)
                    if (now - row["progressed_at"]).total_seconds()
                    >= self.threshold_s(row["provider"], row["pipeline_id"])
                ]
                changes = await self._confirm_stuck(db, candidates, now)
                report.stuck_fired = len(changes)
                report.outbox_rows += await alert_store.write(db, changes, self._receivers, now)
                report.resent, rows = await self._resend(db)
                report.outbox_rows += rows
        if report.stuck_fired:
            logger.info("stuck runs found count=%d", report.stuck_fired)
        return report

    async def _confirm_stuck(
        self, db: Connection, candidates: list[asyncpg.Record], now: datetime
    ) -> list[AlertChange]:
        if not candidates:
            return []
        runs = [(row_to_observation(row), row["progressed_at"]) for row in candidates]
        keys = [dedup_key(Rule.stuck, o.provider.value, o.run_id) for o, _ in runs]
        await alert_store.lock_and_load(db, keys)
        # Re-read after the lock: a batch that moved the run has committed by now.
        floor = min(self.threshold_s(o.provider.value, o.pipeline_id) for o, _ in runs)
        providers, run_ids = [o.provider.value for o, _ in runs], [o.run_id for o, _ in runs]
        still = {
            (row["provider"], row["run_id"])
            for row in await db.fetch(_STILL_STUCK, providers, run_ids, floor)
        }
        return [
            stuck(o, progressed_at, self.threshold_s(o.provider.value, o.pipeline_id), now)
            for o, progressed_at in runs
            if (o.provider.value, o.run_id) in still
        ]

    async def _resend(self, db: Connection) -> tuple[int, int]:
        """Re-enqueues firing alerts for Alertmanager, which expires alerts not re-sent."""
        if not self._resend_receivers:
            return 0, 0
        due = await db.fetch(_DUE_RESENDS, self._settings.resend_interval_s, self._limit)
        if not due:
            return 0, 0
        # The same alert document a trigger carries, rebuilt from the stored state.
        notices = [(alert_store.payload(alert_store.state_from_row(row), "trigger"), "trigger")
                   for row in due]  # fmt: skip
        written = await alert_store.enqueue(db, notices, self._resend_receivers)
        await db.execute(_MARK_SENT, [row["dedup_key"] for row in due])
        return len(due), written

    async def refresh_gauges(self) -> None:
        if self._metrics is None:
            return
        with map_pg_errors():
            counts = await self._store.pool.fetch(_RUN_COUNTS)
            firing = await self._store.pool.fetch(_FIRING)
            backlog = await self._store.pool.fetchval(alert_store.OUTBOX_BACKLOG)
        self._metrics.outbox_backlog.set(backlog)
        self._metrics.runs.clear()
        for row in counts:
            self._metrics.runs.labels(row["provider"], row["state"]).set(row["n"])
        for rule in Rule:
            self._metrics.alerts_firing.labels(rule.value).set(0)
        for row in firing:
            self._metrics.alerts_firing.labels(row["rule"]).set(row["n"])
