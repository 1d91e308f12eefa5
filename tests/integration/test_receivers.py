"""The outbox dispatcher against a real PostgreSQL, a real Alertmanager and a webhook server
(``hook_tools.HookServer``: verifies every signature, can be down, slow or refusing).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pipestatus.adapters.dispatcher import OutboxDispatcher
from pipestatus.adapters.postgres import PgStore
from pipestatus.adapters.receivers import build_receivers, http_client
from pipestatus.settings import AlertSettings, ReceiverSettings
from tests.integration.alertmanager_tools import get_alerts, running_alertmanager
from tests.integration.hook_tools import SECRET, HookServer

pytestmark = pytest.mark.services


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PgStore]:
    async with PgStore(database_url) as s:
        await s.migrate()
        yield s


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    async with HookServer() as server:
        yield server


@pytest.fixture
def alertmanager_url(tmp_path: Path) -> Iterator[str]:
    with running_alertmanager(tmp_path / "alertmanager") as url:
        yield url


def payload(pipeline: str, action: str, **annotations: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "rule": "PipelineRunFailed",
        "labels": {
            "alertname": "PipelineRunFailed",
            "provider": "codat",
            "pipeline_id": pipeline,
            "severity": "warning",
        },
        "annotations": {
            "summary": f"{pipeline} failed",
            "description": "run failed: auth",
            "consecutive_failures": 2,
            **annotations,
        },
        "starts_at": (now - timedelta(minutes=5)).isoformat(),
        "ends_at": now.isoformat() if action == "resolve" else None,
    }


async def enqueue(
    store: PgStore, receiver: str, pipeline: str, action: str, *, age_s: float = 0.0
) -> int:
    row_id: int = await store.pool.fetchval(
        "INSERT INTO alert_outbox (dedup_key, receiver, action, payload, created_at)"
        " VALUES ($1, $2, $3, $4, now() - make_interval(secs => $5)) RETURNING id",
        f"PipelineRunFailed/codat/{pipeline}",
        receiver,
        action,
        json.dumps(payload(pipeline, action)),
        age_s,
    )
    return row_id


async def outbox(store: PgStore) -> dict[int, dict[str, Any]]:
    rows = await store.pool.fetch(
        "SELECT *, next_attempt_at > now() AS later FROM alert_outbox ORDER BY id"
    )
    return {row["id"]: dict(row) for row in rows}


def webhook_settings(url: str, **alerts: Any) -> AlertSettings:
    hook = ReceiverSettings(
        name="hook", type="webhook", url=url, secret=SecretStr(SECRET), timeout_s=2.0
    )
    return AlertSettings(receivers=[hook], **alerts)


class Results(list[tuple[str, str]]):
    def __call__(self, receiver: str, result: str) -> None:
        self.append((receiver, result))


async def test_alertmanager_shows_the_alert_then_resolves_it(
    store: PgStore, alertmanager_url: str
) -> None:
    settings = AlertSettings(
        receivers=[ReceiverSettings(name="am", type="alertmanager", url=alertmanager_url)]
    )
    results = Results()
    async with http_client() as client:
        dispatcher = OutboxDispatcher(store, build_receivers(settings, client), settings, results)
        trigger = await enqueue(store, "am", "sync-42", "trigger")
        assert await dispatcher.deliver_due() == 1
        assert (await outbox(store))[trigger]["delivered_at"] is not None

        labels = payload("sync-42", "trigger")["labels"]
        ours = await _poll_alert(client, alertmanager_url, labels, lambda a: a is not None)
        assert ours is not None
        assert ours["status"]["state"] == "active"
        assert ours["annotations"]["summary"] == "sync-42 failed"
        assert ours["annotations"]["consecutive_failures"] == "2"

        await enqueue(store, "am", "sync-42", "resolve")
        assert await dispatcher.deliver_due() == 1
        gone = await _poll_alert(client, alertmanager_url, labels, _resolved)
        assert _resolved(gone)
    assert results == [("am", "delivered"), ("am", "delivered")]
    assert await dispatcher.backlog() == 0


def _resolved(alert: dict[str, Any] | None) -> bool:
    """Absent from the active list, or still listed with ``endsAt`` in the past."""
    if alert is None:
        return True
    ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
    return ends <= datetime.now(UTC)


async def _poll_alert(
    client: httpx.AsyncClient, url: str, labels: dict[str, str], done: Any
) -> dict[str, Any] | None:
    """Alertmanager processes pushed alerts asynchronously: poll until ``done(alert)``."""
    deadline = time.monotonic() + 15
    while True:
        alerts = await get_alerts(client, url, active="true", silenced="true", inhibited="true")
        ours = next((a for a in alerts if a["labels"] == labels), None)
        if done(ours) and (ours is None or ours["status"]["state"] != "unprocessed"):
            return ours
        assert time.monotonic() < deadline, f"alertmanager never showed the change: {alerts}"
        await asyncio.sleep(0.2)


async def test_webhook_down_then_up_delivers_each_once_in_order(
    store: PgStore, hook: HookServer
) -> None:
    settings = webhook_settings(hook.url, retry_initial_s=30.0, retry_max_s=600.0)
    results = Results()
    hook.status = 503
    async with http_client() as client:
        dispatcher = OutboxDispatcher(
            store, build_receivers(settings, client), settings, results, rand=lambda: 1.0
        )
        a_trigger = await enqueue(store, "hook", "a", "trigger")
        a_resolve = await enqueue(store, "hook", "a", "resolve")
        b_trigger = await enqueue(store, "hook", "b", "trigger")

        # down: both triggers fail; the resolve waits behind its trigger, never tried
        assert await dispatcher.deliver_due() == 2
        rows = await outbox(store)
        for row_id in (a_trigger, b_trigger):
            assert rows[row_id]["attempts"] == 1
            assert rows[row_id]["later"]
            assert rows[row_id]["delivered_at"] is None
            assert "HTTP 503" in rows[row_id]["last_error"]
        assert rows[a_resolve]["attempts"] == 0
        assert await dispatcher.deliver_due() == 0  # nothing due: backing off

        # still down on the second try; the backoff doubles (rand=1.0: the cap itself)
        await store.pool.execute("UPDATE alert_outbox SET next_attempt_at = now()")
        assert await dispatcher.deliver_due() == 2
        rows = await outbox(store)
        assert rows[a_trigger]["attempts"] == 2
        wait = rows[a_trigger]["next_attempt_at"] - datetime.now(UTC)
        assert timedelta(seconds=50) < wait <= timedelta(seconds=60)

        # up again
        hook.status = 200
        await store.pool.execute("UPDATE alert_outbox SET next_attempt_at = now()")
        assert await dispatcher.deliver_due() == 2  # the triggers
        assert await dispatcher.deliver_due() == 1  # then the resolve, now unblocked
        assert await dispatcher.deliver_due() == 0
        assert await dispatcher.backlog() == 0

    assert all(r.signature_ok for r in hook.receptions)
    assert len(hook.receptions) == 7  # 2 + 2 refused, 3 accepted
    delivered = [r.key for r in hook.delivered]
    assert Counter(delivered) == {
        ("PipelineRunFailed/codat/a", "alert.firing"): 1,
        ("PipelineRunFailed/codat/a", "alert.resolved"): 1,
        ("PipelineRunFailed/codat/b", "alert.firing"): 1,
    }
    assert delivered.index(("PipelineRunFailed/codat/a", "alert.firing")) < delivered.index(
        ("PipelineRunFailed/codat/a", "alert.resolved")
    )
    # the id is stable across retries, so a receiver can collapse a duplicate
    a_ids = {r.headers["webhook-id"] for r in hook.receptions if r.key[0].endswith("/a")}
    assert a_ids == {f"msg_{a_trigger}", f"msg_{a_resolve}"}
    assert Counter(results) == {("hook", "failed"): 4, ("hook", "delivered"): 3}


async def test_two_dispatchers_never_deliver_a_row_twice(
    database_url: str, store: PgStore, hook: HookServer
) -> None:
    settings = webhook_settings(hook.url)
    hook.delay_s = 0.01
    pipelines = [f"p{i}" for i in range(30)]
    for name in pipelines:
        await enqueue(store, "hook", name, "trigger")
        await enqueue(store, "hook", name, "resolve")
    counts: list[Counter[str]] = [Counter(), Counter()]

    async def worker(index: int) -> None:
        async with PgStore(database_url) as own, http_client() as client:
            dispatcher = OutboxDispatcher(
                own,
                build_receivers(settings, client),
                settings,
                lambda r, s: counts[index].update([s]),
            )
            deadline = time.monotonic() + 60
            while await dispatcher.backlog() > 0:
                assert time.monotonic() < deadline, "outbox not drained"
                if not await dispatcher.deliver_due(limit=4):
                    await asyncio.sleep(0.005)

    await asyncio.gather(worker(0), worker(1))

    ids = Counter(r.headers["webhook-id"] for r in hook.receptions)
    assert len(ids) == 2 * len(pipelines)
    assert set(ids.values()) == {1}, "a row was delivered twice"
    assert all(r.signature_ok for r in hook.receptions)
    order = [r.key for r in hook.receptions]
    for name in pipelines:
        key = f"PipelineRunFailed/codat/{name}"
        assert order.index((key, "alert.firing")) < order.index((key, "alert.resolved"))
    assert counts[0]["delivered"] > 0
    assert counts[1]["delivered"] > 0
    assert counts[0]["delivered"] + counts[1]["delivered"] == 2 * len(pipelines)


async def test_gives_up_on_old_unconfigured_and_rejected_rows(
    store: PgStore, hook: HookServer
) -> None:
    settings = webhook_settings(hook.url, give_up_after_s=3600.0)
    results = Results()
    async with http_client() as client:
        dispatcher = OutboxDispatcher(store, build_receivers(settings, client), settings, results)
        old = await enqueue(store, "hook", "old", "trigger", age_s=7200)
        gone = await enqueue(store, "gone", "x", "trigger")
        assert await dispatcher.deliver_due() == 2
        rows = await outbox(store)
        assert rows[old]["gave_up_at"] is not None
        assert rows[old]["attempts"] == 0
        assert rows[gone]["gave_up_at"] is not None
        assert rows[gone]["last_error"] == "receiver not configured"
        assert hook.receptions == []
        assert sorted(results) == [("gone", "gave_up"), ("hook", "gave_up")]

        # a 400 is final: given up at once, and the resolve behind it is no longer blocked
        hook.status = 400
        refused = await enqueue(store, "hook", "bad", "trigger")
        await enqueue(store, "hook", "bad", "resolve")
        assert await dispatcher.deliver_due() == 1
        rows = await outbox(store)
        assert rows[refused]["gave_up_at"] is not None
        assert rows[refused]["attempts"] == 1
        assert "HTTP 400" in rows[refused]["last_error"]
        assert results[-1] == ("hook", "gave_up")
        hook.status = 200
        assert await dispatcher.deliver_due() == 1
        assert results[-1] == ("hook", "delivered")
        assert await dispatcher.backlog() == 0
    for row in (await outbox(store)).values():
        assert SECRET.removeprefix("whsec_") not in (row["last_error"] or "")


async def test_a_slow_receiver_times_out_and_is_retried(store: PgStore, hook: HookServer) -> None:
    hook.delay_s = 2.0
    settings = webhook_settings(hook.url)
    settings.receivers[0] = settings.receivers[0].model_copy(update={"timeout_s": 0.3})
    results = Results()
    async with http_client() as client:
        dispatcher = OutboxDispatcher(store, build_receivers(settings, client), settings, results)
        row_id = await enqueue(store, "hook", "slow", "trigger")
        started = time.monotonic()
        assert await dispatcher.deliver_due() == 1
        assert time.monotonic() - started < 1.5
    row = (await outbox(store))[row_id]
    assert row["delivered_at"] is None
    assert row["attempts"] == 1
    assert "timed out" in row["last_error"]
    assert results == [("hook", "failed")]


async def test_run_wakes_on_demand_and_stops(store: PgStore, hook: HookServer) -> None:
    settings = webhook_settings(hook.url)
    async with http_client() as client:
        # a long poll interval: only wake() can explain a prompt delivery
        dispatcher = OutboxDispatcher(
            store, build_receivers(settings, client), settings, poll_interval_s=60.0
        )
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(0.2)  # the first, empty pass is done; now idle
        await enqueue(store, "hook", "w", "trigger")
        assert await dispatcher.backlog() == 1
        dispatcher.wake()
        async with asyncio.timeout(5):
            await hook.delivered_event.wait()
        stop.set()
        async with asyncio.timeout(2):
            await task
        assert await dispatcher.backlog() == 0
