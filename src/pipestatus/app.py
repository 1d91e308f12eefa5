"""Composition root and worker lifecycle: build adapters, consume, drain on SIGTERM.

The loop: fetch a bounded batch, process it in one database transaction (retrying with
backoff while PostgreSQL or Kafka is unavailable), then mirror offsets to Kafka. On
SIGTERM/SIGINT it stops fetching, finishes the in-flight batch, commits and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipestatus.adapters.kafka import DeadLetterMirror, KafkaSource, OffsetLoader
from pipestatus.adapters.postgres import PgStore
from pipestatus.domain.batch import Outcome
from pipestatus.errors import InfrastructureError
from pipestatus.intake import InboundRecord, Routing
from pipestatus.service import BatchReport, process_batch
from pipestatus.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class WorkerSummary:
    """Counters for the one summary line logged at exit."""

    batches: int = 0
    records: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    transitions: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, report: BatchReport) -> None:
        self.batches += 1
        self.records += len(report.results)
        self.outcomes.update(result.outcome.value for result in report.results)
        self.transitions += len(report.transitions)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = " ".join(f"{name}={self.outcomes[name]}" for name in map(str, Outcome))
        rate = self.records / elapsed if elapsed > 0 else 0.0
        return (
            f"worker stopped records={self.records} {parts} transitions={self.transitions} "
            f"batches={self.batches} retries={self.retries} seconds={elapsed:.1f} "
            f"records_per_s={rate:.0f}"
        )


def routing_from(settings: Settings) -> Routing:
    return Routing(
        topics=settings.kafka.topics,
        cloudevents_type_prefixes=settings.kafka.cloudevents_type_prefixes,
        max_payload_bytes=settings.worker.max_payload_bytes,
    )


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run_worker(
    settings: Settings, *, until_idle: bool = False, stop: asyncio.Event | None = None
) -> WorkerSummary:
    """Runs the worker until ``stop`` is set (or, with ``until_idle``, until caught up)."""
    stop = stop or asyncio.Event()
    summary = WorkerSummary()
    routing = routing_from(settings)
    database = settings.database
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            PgStore(
                database.url.get_secret_value(),
                max_size=database.pool_max_size,
                connect_timeout_s=database.connect_timeout_s,
            )
        )
        await store.migrate()
        mirror = await stack.enter_async_context(DeadLetterMirror(settings.kafka))
        source = await stack.enter_async_context(
            KafkaSource(settings.kafka, settings.kafka.group_id, _offsets_loader(store, settings))
        )
        logger.info(
            "worker started group=%s topics=%s", settings.kafka.group_id, ",".join(source.topics)
        )
        loop = _Loop(settings, routing, store, source, mirror, summary, stop)
        await loop.run(until_idle=until_idle)
    logger.info("%s", summary.line())
    return summary


def _offsets_loader(store: PgStore, settings: Settings) -> OffsetLoader:
    async def load(partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return await store.load_offsets(settings.kafka.group_id, partitions)

    return load


@dataclass
class _Loop:
    settings: Settings
    routing: Routing
    store: PgStore
    source: KafkaSource
    mirror: DeadLetterMirror
    summary: WorkerSummary
    stop: asyncio.Event

    async def run(self, *, until_idle: bool) -> None:
        idle = 0
        while not self.stop.is_set():
            records = await self._fetch()
            if records is None:
                continue
            if not records:
                if until_idle:
                    idle = idle + 1 if await self._caught_up() else 0
                    if idle >= self.settings.worker.idle_polls:
                        logger.info("caught up on every assigned partition; exiting")
                        return
                continue
            idle = 0
            report = await self._process(records)
            if report is None:
                return  # stopped while the database was unavailable; nothing committed
            self.summary.add(report)
            await self.source.commit(report.next_offsets)
            await self._mirror_dead_letters(report)

    async def _fetch(self) -> list[InboundRecord] | None:
        try:
            return await self.source.fetch()
        except InfrastructureError as exc:
            await self._backoff(exc)
            return None

    async def _caught_up(self) -> bool:
        try:
            return await self.source.caught_up()
        except InfrastructureError:
            return False

    async def _process(self, records: list[InboundRecord]) -> BatchReport | None:
        """Processes the batch, retrying while a dependency is down; ``None`` if stopped."""
        attempt = 0
        while True:
            try:
                async with self.source.processing:
                    return await process_batch(
                        records,
                        routing=self.routing,
                        store=self.store,
                        group_id=self.settings.kafka.group_id,
                    )
            except InfrastructureError as exc:
                attempt += 1
                if self.stop.is_set():
                    logger.warning("stopping with an uncommitted batch: %s", exc)
                    return None
                await self._backoff(exc, attempt)

    async def _backoff(self, exc: Exception, attempt: int = 1) -> None:
        self.summary.retries += 1
        worker = self.settings.worker
        ceiling = min(worker.retry_max_s, worker.retry_initial_s * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311  # jitter, not crypto
        logger.warning("dependency unavailable, retrying in %.1fs: %s", delay, exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.stop.wait()

    async def _mirror_dead_letters(self, report: BatchReport) -> None:
        letters = [
            (result.record, result.reason or "", result.stage, result.message)
            for result in report.results
            if result.outcome is Outcome.dead_letter
        ]
        await self.mirror.publish(letters)
