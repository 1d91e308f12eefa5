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

from pipestatus.adapters import alert_store
from pipestatus.adapters.metrics import Metrics
from pipestatus.adapters.postgres import PgStore, PgUnitOfWork, map_pg_errors
from pipestatus.domain.alerting import AlertChange, Rule, dedup_key, stuck
from pipestatus.domain.observation import Observation
from pipestatus.domain.states import Provider
from pipestatus.errors import InfrastructureError
from pipestatus.settings import AlertSettings

logger = logging.getLogger(__name__)


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
                if not await uow.try_sweep_lock():
                    return report  # another worker is sweeping
                candidates = [
                    (run, progressed_at)
                    for run, progressed_at in await uow.stuck_candidates(floor, self._limit)
                    if (now - progressed_at).total_seconds()
                    >= self.threshold_s(run.provider.value, run.pipeline_id)
                ]
                changes = await self._confirm_stuck(uow, candidates, now)
                report.stuck_fired = len(changes)
                report.outbox_rows += await uow.write_alerts(changes, self._receivers, now)
                report.resent, rows = await self._resend(uow)
                report.outbox_rows += rows
        if report.stuck_fired:
            logger.info("stuck runs found count=%d", report.stuck_fired)
        return report

    async def _confirm_stuck(
        self, uow: PgUnitOfWork, runs: list[tuple[Observation, datetime]], now: datetime
    ) -> list[AlertChange]:
        if not runs:
            return []
        keys = [dedup_key(Rule.stuck, o.provider.value, o.run_id) for o, _ in runs]
        await uow.lock_and_load_alerts(keys)
        # Re-read after the lock: a batch that moved the run has committed by now.
        floor = min(self.threshold_s(o.provider.value, o.pipeline_id) for o, _ in runs)
        still = await uow.still_stuck([(o.provider.value, o.run_id) for o, _ in runs], floor)
        return [
            stuck(o, progressed_at, self.threshold_s(o.provider.value, o.pipeline_id), now)
            for o, progressed_at in runs
            if (o.provider.value, o.run_id) in still
        ]

    async def _resend(self, uow: PgUnitOfWork) -> tuple[int, int]:
        """Re-enqueues firing alerts for Alertmanager, which expires alerts not re-sent."""
        if not self._resend_receivers:
            return 0, 0
        due = await uow.due_resends(self._settings.resend_interval_s, self._limit)
        if not due:
            return 0, 0
        # The same alert document a trigger carries, rebuilt from the stored state.
        notices = [(alert_store.payload(state, "trigger"), "trigger") for state in due]
        written = await uow.enqueue_alerts(notices, self._resend_receivers)
        await uow.mark_alerts_sent([state.dedup_key for state in due])
        return len(due), written

    async def refresh_gauges(self) -> None:
        if self._metrics is None:
            return
        with map_pg_errors():
            async with self._store.unit_of_work() as uow:
                counts = await uow.run_counts()
                firing = await uow.firing_counts()
                backlog = await uow.outbox_backlog()
        self._metrics.outbox_backlog.set(backlog)
        self._metrics.runs.clear()
        for provider, state, runs in counts:
            self._metrics.runs.labels(provider, state).set(runs)
        for rule in Rule:
            self._metrics.alerts_firing.labels(rule.value).set(0)
        for rule_name, firing_now in firing.items():
            self._metrics.alerts_firing.labels(rule_name).set(firing_now)
