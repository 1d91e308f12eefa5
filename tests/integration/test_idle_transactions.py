"""A transaction left idle (its process frozen) is ended by PostgreSQL; the dispatcher's is not.

``PIPESTATUS_DATABASE__IDLE_IN_TRANSACTION_TIMEOUT_S`` becomes the pool's
``idle_in_transaction_session_timeout``: a worker frozen inside a batch (SIGSTOP, a paused
VM) would otherwise hold that batch's locks until it thaws, and every other worker of
the group would wait on them (``test_faults.py``'s zombie scenario found this). The
dispatcher idles on purpose while receivers answer, so its transaction opts out.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from pipestatus.adapters.dispatcher import OutboxDispatcher
from pipestatus.adapters.postgres import PgStore
from pipestatus.adapters.receivers import build_receivers, http_client
from pipestatus.domain.states import Provider
from pipestatus.errors import StoreUnavailableError
from pipestatus.settings import AlertSettings, ReceiverSettings
from tests.integration.hook_tools import SECRET, HookServer

pytestmark = pytest.mark.services

LIMIT_S = 0.5


async def test_an_idle_batch_transaction_is_ended_and_its_locks_released(
    database_url: str,
) -> None:
    async with (
        PgStore(database_url, idle_in_transaction_timeout_s=LIMIT_S) as frozen,
        PgStore(database_url) as other,
    ):
        await frozen.migrate()

        async def hold_a_lock_then_idle() -> None:
            async with frozen.unit_of_work() as uow:
                await uow.lock_and_load_runs([(Provider.codat, "frozen-run")])
                # This transaction now idles; the other session waits for the run's lock
                # and gets it once the server has ended the idle session.
                async with asyncio.timeout(30):
                    await other.pool.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended('codat/frozen-run', 0))"
                    )
                await uow.lock_and_load_runs([(Provider.codat, "frozen-run")])

        with pytest.raises(StoreUnavailableError, match=r"closed|terminat"):
            await hold_a_lock_then_idle()
        assert await frozen.ping()  # the pool recovers with a fresh connection


async def test_the_dispatcher_may_idle_while_a_slow_receiver_answers(database_url: str) -> None:
    async with (
        PgStore(database_url, idle_in_transaction_timeout_s=LIMIT_S) as store,
        HookServer(delay_s=4 * LIMIT_S) as hook,
    ):
        await store.migrate()
        payload: dict[str, object] = {"rule": "PipelineRunFailed", "labels": {}, "annotations": {},
                   "starts_at": datetime.now(UTC).isoformat(), "ends_at": None}  # fmt: skip
        await store.pool.execute(
            "INSERT INTO alert_outbox (dedup_key, receiver, action, payload)"
            " VALUES ('PipelineRunFailed/codat/slow', 'hook', 'trigger', $1)",
            json.dumps(payload),
        )
        receiver = ReceiverSettings(
            name="hook", type="webhook", url=hook.url, secret=SecretStr(SECRET), timeout_s=10
        )
        settings = AlertSettings(receivers=[receiver])
        async with http_client() as client:
            dispatcher = OutboxDispatcher(store, build_receivers(settings, client), settings)
            assert await dispatcher.deliver_due() == 1
            assert await dispatcher.backlog() == 0
        assert [r.status for r in hook.receptions] == [200]
