"""Delivers the ``alert_outbox`` (docs/architecture.md, alerts): timeouts, backoff with
jitter, several workers.

Due rows are locked ``FOR UPDATE SKIP LOCKED`` for the length of one transaction, so two
workers never send the same row at once; a row waits while an older undelivered row of the
same dedup key and receiver exists, so a resolve never overtakes its trigger. Delivery is
at least once: a crash between sending and committing sends the row again (the webhook id
and the dedup keys let receivers collapse the duplicate).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from pipestatus.adapters.alert_store import Delivery, DueAlert
from pipestatus.adapters.postgres import PgStore, map_pg_errors
from pipestatus.adapters.receivers import AlertRetryLaterError, OutboxItem, Receiver
from pipestatus.errors import AlertDeliveryError, StoreUnavailableError
from pipestatus.settings import AlertSettings

logger = logging.getLogger(__name__)

#: Rows delivered at once inside one batch (across receivers); keeps the transaction short.
_CONCURRENCY = 8
_DEFAULT_TIMEOUT_S = 5.0


def backoff_delay(
    attempts: int, initial_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Full jitter: uniform in [0, min(max, initial·2^attempts)] (``attempts`` before this one)."""
    cap = min(max_s, initial_s * 2.0 ** min(attempts, 62))
    return cap * rand()


class OutboxDispatcher:
    """Sends due outbox rows through their receivers and records each outcome."""

    def __init__(
        self,
        store: PgStore,
        receivers: dict[str, Receiver],
        settings: AlertSettings,
        on_result: Callable[[str, str], None] | None = None,
        *,
        poll_interval_s: float = 0.5,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._receivers = receivers
        self._settings = settings
        self._timeouts = {r.name: r.timeout_s for r in settings.receivers}
        self._on_result = on_result
        self._poll = poll_interval_s
        self._rand = rand
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Deliver now rather than at the next poll (call from the dispatcher's event loop)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, *, limit: int = 100) -> None:
        """Delivers until ``stop`` is set; a database outage is logged and retried."""
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                handled = await self.deliver_due(limit)
                failures = 0
            except StoreUnavailableError as exc:
                failures += 1
                delay = backoff_delay(failures, self._poll, self._settings.retry_max_s)
                logger.warning("alert dispatcher: %s; retrying in %.1fs", exc, delay)
                await _wait_any(stop, None, max(delay, self._poll))
                continue
            if handled < limit:
                await _wait_any(stop, self._wake, self._poll)

    async def deliver_due(self, limit: int = 100) -> int:
        """One batch of due rows; returns how many were handled (delivered, failed, given up)."""
        with map_pg_errors():
            async with self._store.unit_of_work() as uow:
                # This transaction idles on purpose while receivers answer (up to their
                # timeouts); the pool's idle-in-transaction limit is for batch transactions.
                await uow.allow_idling()
                due = await uow.claim_due_alerts(limit, float(self._settings.give_up_after_s))
                if not due:
                    return 0
                gate = asyncio.Semaphore(_CONCURRENCY)
                outcomes = await asyncio.gather(*(self._handle(d, gate) for d in due))
                await uow.record_deliveries(outcomes)
        for outcome in outcomes:
            if outcome.result != "delivered":
                logger.warning(
                    "alert %s to %s: %s (%s)",
                    outcome.row.dedup_key,
                    outcome.row.receiver,
                    outcome.result,
                    outcome.error,
                )
            if self._on_result is not None:
                self._on_result(outcome.row.receiver, outcome.result)
        return len(outcomes)

    async def backlog(self) -> int:
        """Rows neither delivered nor given up (for a gauge)."""
        with map_pg_errors():
            async with self._store.unit_of_work() as uow:
                return await uow.outbox_backlog()

    async def _handle(self, due: DueAlert, gate: asyncio.Semaphore) -> Delivery:
        row = due.item
        if due.expired:
            return Delivery(row, "gave_up", 0, "older than give_up_after_s")
        receiver = self._receivers.get(row.receiver)
        if receiver is None:
            return Delivery(row, "gave_up", 0, "receiver not configured")
        timeout = self._timeouts.get(row.receiver, _DEFAULT_TIMEOUT_S)
        try:
            async with gate, asyncio.timeout(timeout):
                await receiver.deliver(row)
        except AlertDeliveryError as exc:
            if not exc.retriable:
                return Delivery(row, "gave_up", error=str(exc))
            after = exc.retry_after_s if isinstance(exc, AlertRetryLaterError) else 0.0
            return self._failed(row, str(exc), after)
        except TimeoutError:
            return self._failed(row, f"receiver {row.receiver}: timed out after {timeout:g}s")
        except Exception as exc:  # a receiver bug must not wedge the outbox: retried later
            logger.exception("alert receiver %s failed unexpectedly", row.receiver)
            return self._failed(row, f"receiver {row.receiver}: {type(exc).__name__}")
        return Delivery(row, "delivered")

    def _failed(self, row: OutboxItem, error: str, at_least_s: float = 0.0) -> Delivery:
        s = self._settings
        delay = backoff_delay(row.attempts, s.retry_initial_s, s.retry_max_s, self._rand)
        return Delivery(
            row, "failed", error=error, delay_s=max(delay, min(at_least_s, s.retry_max_s))
        )


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout_s: float) -> None:
    """Returns when ``stop`` or ``wake`` is set, or after ``timeout_s``."""
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
