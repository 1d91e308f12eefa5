"""The sweep re-sends firing alerts to Alertmanager receivers (it expires alerts not re-sent)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pipestatus.adapters.postgres import PgStore
from pipestatus.adapters.sweep import Sweeper
from pipestatus.domain.alerting import AlertRules, evaluate
from pipestatus.domain.machine import Transition
from pipestatus.domain.observation import Observation
from pipestatus.domain.states import ErrorCategory, Provider, RunState
from pipestatus.settings import AlertSettings

pytestmark = [pytest.mark.services]


async def test_firing_alert_is_re_sent_with_its_trigger_document(database_url) -> None:
    """A firing alert not sent for longer than the interval is enqueued again, unchanged."""
    failed = Observation(
        provider=Provider.nuvo, run_id="r1", pipeline_id="p1", attempt=1,
        state=RunState.failed, provider_status="FAILED",
        occurred_at=datetime(2026, 7, 1, tzinfo=UTC), error_category=ErrorCategory.parse,
        retryable=False,
    )  # fmt: skip
    now = datetime.now(UTC)
    [change] = evaluate([Transition(None, None, None, failed)], {}, AlertRules(0.05), now)
    async with PgStore(database_url) as store:
        await store.migrate()
        async with store.unit_of_work() as uow:
            await uow.write_alerts([change], ["am"], now - timedelta(hours=1))
        await store.pool.execute("UPDATE alert_state SET last_sent_at = now() - '1 hour'::interval")
        sweeper = Sweeper(
            store, AlertSettings(resend_interval_s=60), receivers=("am",), resend_receivers=("am",)
        )
        report = await sweeper.sweep_once()
        again = await sweeper.sweep_once()
        rows = await store.pool.fetch("SELECT action, payload FROM alert_outbox ORDER BY id")
    assert (report.resent, again.resent) == (1, 0), "re-sent once per interval"
    assert [r["action"] for r in rows] == ["trigger", "trigger"]
    assert json.loads(rows[1]["payload"]) == json.loads(rows[0]["payload"])
