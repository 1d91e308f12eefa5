"""The naive baseline consumer that ``pipestatus bench`` compares the worker with.

What a straightforward first implementation would be: an aiokafka consumer and an asyncpg
connection, taking records one at a time; each one is validated (``intake.prepare``) and
applied in its own transaction, with its partition's next offset stored in that same
transaction. It writes through the same schema and the same statements as the worker
(``service.apply_prepared`` on a one-record list, ``PgUnitOfWork.save_offsets``), so it
reaches the same end state by construction, with the same durability: ``fsync`` and
synchronous commit stay as the server has them, and a crash loses nothing.

The worker mirrors its offsets to Kafka after each batch; the baseline does it after each
record only with ``--kafka-commit`` (off by default, which favours the baseline).

Configuration comes from the same ``PIPESTATUS_*`` variables as the worker::

    python -m pipestatus_dev.bench.baseline [--until-idle] [--kafka-commit]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from pipestatus.adapters.kafka import client_options, inbound_record
from pipestatus.adapters.postgres import PgStore
from pipestatus.app import alerting_from, install_stop_signals, routing_from
from pipestatus.domain.batch import Outcome
from pipestatus.errors import ConfigError
from pipestatus.intake import prepare
from pipestatus.logs import configure_logging
from pipestatus.service import BatchReport, apply_prepared
from pipestatus.settings import Settings, load_settings

logger = logging.getLogger("pipestatus_dev.bench.baseline")

#: Records taken from the fetch buffer per call (then applied one by one), like ``getone``.
_TAKE = 100


@dataclass
class BaselineSummary:
    records: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    started: float = field(default_factory=time.monotonic)

    def add(self, report: BatchReport) -> None:
        for result in report.results:
            self.records += 1
            self.outcomes[result.outcome.value] += 1

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = " ".join(f"{name}={count}" for name, count in self.outcomes.items())
        rate = self.records / elapsed if elapsed > 0 else 0.0
        return (
            f"baseline stopped records={self.records} {parts} seconds={elapsed:.1f} "
            f"records_per_s={rate:.0f}"
        )


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    def __init__(self, store: PgStore, consumer: AIOKafkaConsumer, group_id: str) -> None:
        self._store = store
        self._consumer = consumer
        self._group_id = group_id

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass  # each record commits on its own; nothing is in flight between records

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = [(tp.topic, tp.partition) for tp in assigned]
        stored = await self._store.load_offsets(self._group_id, partitions)
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                self._consumer.seek(tp, offset)
        # The same words as the worker's log line: the bench times the drain from here.
        logger.info("partitions assigned count=%d seeked_to_stored=%d", len(assigned), len(stored))


async def run_baseline(
    settings: Settings,
    *,
    until_idle: bool = False,
    kafka_commit: bool = False,
    stop: asyncio.Event | None = None,
) -> BaselineSummary:
    """Consumes one record per transaction until ``stop`` (or, ``until_idle``, caught up)."""
    stop = stop or asyncio.Event()
    summary = BaselineSummary()
    routing = routing_from(settings)
    alerting = alerting_from(settings)
    kafka = settings.kafka
    group_id = kafka.group_id
    async with PgStore(settings.database.url.get_secret_value(), max_size=1) as store:
        await store.migrate()
        consumer = AIOKafkaConsumer(
            **client_options(kafka),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=kafka.auto_offset_reset,
        )
        topics = sorted({*kafka.topics, *kafka.shared_topics})
        consumer.subscribe(topics=topics, listener=_SeekToStoredOffsets(store, consumer, group_id))
        await consumer.start()
        logger.info("baseline started group=%s topics=%s", group_id, ",".join(topics))
        try:
            async for messages in fetch_batches(
                consumer, settings, _TAKE, until_idle=until_idle, stop=stop
            ):
                for message in messages:
                    if stop.is_set():
                        break
                    record = inbound_record(message)
                    report = BatchReport()
                    prepared = prepare(record, routing)
                    next_offset = {(record.topic, record.partition): record.offset + 1}
                    async with store.unit_of_work() as uow:
                        await apply_prepared(uow, [prepared], report, alerting)
                        await uow.save_offsets(group_id, next_offset)
                    summary.add(report)
                    if kafka_commit:
                        tp = TopicPartition(record.topic, record.partition)
                        await consumer.commit({tp: record.offset + 1})
        finally:
            await consumer.stop()
    logger.info("%s", summary.line())
    return summary


async def fetch_batches(
    consumer: AIOKafkaConsumer,
    settings: Settings,
    max_records: int,
    *,
    until_idle: bool,
    stop: asyncio.Event,
) -> AsyncIterator[list[Any]]:
    """Non-empty batches of records until ``stop`` (or, ``until_idle``, caught up)."""
    idle = 0
    while not stop.is_set():
        batches = await consumer.getmany(
            timeout_ms=settings.kafka.max_batch_wait_ms, max_records=max_records
        )
        messages = [message for part in batches.values() for message in part]
        if messages:
            idle = 0
            yield messages
        elif until_idle:
            idle = idle + 1 if await caught_up(consumer) else 0
            if idle >= settings.worker.idle_polls:
                logger.info("caught up on every assigned partition; exiting")
                return


async def caught_up(consumer: AIOKafkaConsumer) -> bool:
    """Whether the consumer's position is at the end of every partition assigned to it."""
    assigned = sorted(consumer.assignment())
    if not assigned:
        return False
    ends = await consumer.end_offsets(assigned)
    for tp in assigned:
        if await consumer.position(tp) < ends[tp]:
            return False
    return True


def consumer_main(
    name: str,
    args: argparse.Namespace,
    consume: Callable[[Settings, argparse.Namespace, asyncio.Event], Awaitable[object]],
) -> int:
    """A bench consumer's process: settings from the environment, logs, stop on SIGTERM."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"{name}: {exc}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)

    async def go() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await consume(settings, args, stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipestatus_dev.bench.baseline",
        description="The naive one-record-per-transaction consumer pipestatus is compared with.",
    )
    parser.add_argument("--until-idle", action="store_true", help="exit once caught up")
    parser.add_argument(
        "--kafka-commit", action="store_true", help="also commit each offset to Kafka"
    )
    return consumer_main(
        "baseline",
        parser.parse_args(argv),
        lambda settings, args, stop: run_baseline(
            settings, until_idle=args.until_idle, kafka_commit=args.kafka_commit, stop=stop
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
