"""The limit consumer: the leanest consumer that is still durable, the bench's physical reference.

It does what any durable consumer of this backlog must do and nothing else: aiokafka batches
(the worker's fetch settings), every value decoded (orjson; a value that does not decode is
counted, not dropped), the batch's raw records COPYed into one table
(``copy_records_to_table``) and the partitions' next offsets stored in the same transaction,
one transaction per batch, with ``fsync`` and synchronous commit as the server has them. A
crash loses nothing and a restart resumes from the stored offsets.

It does not validate against the providers' schemas, normalize, identify or deduplicate
events, fold runs, keep transitions, dead-letter, alert or mirror offsets to Kafka: what the
worker does on top of it is what the bench's ``share_of_limit`` prices.

Configuration comes from the same ``PIPESTATUS_*`` variables as the worker::

    python -m pipestatus_dev.bench.limit [--until-idle]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from pipestatus.adapters.kafka import client_options
from pipestatus.settings import Settings
from pipestatus_dev.bench.baseline import consumer_main, fetch_batches

logger = logging.getLogger("pipestatus_dev.bench.limit")

TABLE = "limit_records"
COLUMNS = ("topic", "partition", "record_offset", "key", "value")
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    topic         text    NOT NULL,
    partition     integer NOT NULL,
    record_offset bigint  NOT NULL,
    key           bytea,
    value         bytea
);
CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id    text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
"""
#: Every partition's next offset in one statement, never moving backwards.
SAVE_OFFSETS = """
INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
SELECT $1, * FROM unnest($2::text[], $3::integer[], $4::bigint[])
ON CONFLICT (group_id, topic, partition)
DO UPDATE SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset)
"""
LOAD_OFFSETS = "SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = $1"


@dataclass
class LimitSummary:
    records: int = 0
    undecodable: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.records / elapsed if elapsed > 0 else 0.0
        return (
            f"limit stopped records={self.records} undecodable={self.undecodable} "
            f"batches={self.batches} seconds={elapsed:.1f} records_per_s={rate:.0f}"
        )


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    def __init__(self, conn: asyncpg.Connection, consumer: AIOKafkaConsumer, group: str) -> None:
        self._conn = conn
        self._consumer = consumer
        self._group = group
        self.lock = asyncio.Lock()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:  # the batch in flight commits before the partitions move
            pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self.lock:
            rows = await self._conn.fetch(LOAD_OFFSETS, self._group)
        stored = {(row["topic"], row["partition"]): row["next_offset"] for row in rows}
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                self._consumer.seek(tp, offset)
        # The worker's words: the bench times the drain from this line.
        logger.info("partitions assigned count=%d seeked_to_stored=%d", len(assigned), len(stored))


def decode_batch(messages: Sequence[Any]) -> tuple[list[tuple[Any, ...]], dict[Any, int], int]:
    """(rows to COPY, next offset per partition, values that did not decode)."""
    rows = []
    ends: dict[Any, int] = {}
    undecodable = 0
    loads = orjson.loads
    for message in messages:
        try:
            loads(message.value)
        except (orjson.JSONDecodeError, TypeError):
            undecodable += 1
        rows.append((message.topic, message.partition, message.offset, message.key, message.value))
        ends[(message.topic, message.partition)] = message.offset + 1
    return rows, ends, undecodable


async def commit_batch(
    conn: asyncpg.Connection, group: str, rows: list[tuple[Any, ...]], ends: dict[Any, int]
) -> None:
    """The raw records and the next offsets, in one transaction."""
    async with conn.transaction():
        await conn.copy_records_to_table(TABLE, records=rows, columns=COLUMNS)
        await conn.execute(
            SAVE_OFFSETS,
            group,
            [topic for topic, _ in ends],
            [partition for _, partition in ends],
            list(ends.values()),
        )


async def run_limit(
    settings: Settings, *, until_idle: bool = False, stop: asyncio.Event | None = None
) -> LimitSummary:
    """Consumes batch by batch until ``stop`` (or, ``until_idle``, caught up)."""
    stop = stop or asyncio.Event()
    summary = LimitSummary()
    kafka = settings.kafka
    group = kafka.group_id
    conn = await asyncpg.connect(settings.database.url.get_secret_value())
    try:
        await conn.execute(SCHEMA)
        consumer = AIOKafkaConsumer(
            **client_options(kafka),
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset=kafka.auto_offset_reset,
            fetch_max_bytes=kafka.max_batch_bytes,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            max_partition_fetch_bytes=min(kafka.max_batch_bytes, 8 * 1024 * 1024),
        )
        listener = _SeekToStoredOffsets(conn, consumer, group)
        topics = sorted({*kafka.topics, *kafka.shared_topics})
        consumer.subscribe(topics=topics, listener=listener)
        await consumer.start()
        logger.info("limit started group=%s topics=%s", group, ",".join(topics))
        try:
            async for messages in fetch_batches(
                consumer, settings, kafka.max_batch_records, until_idle=until_idle, stop=stop
            ):
                rows, ends, undecodable = decode_batch(messages)
                async with listener.lock:
                    await commit_batch(conn, group, rows, ends)
                summary.records += len(rows)
                summary.undecodable += undecodable
                summary.batches += 1
        finally:
            await consumer.stop()
    finally:
        await conn.close()
    logger.info("%s", summary.line())
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipestatus_dev.bench.limit",
        description="The leanest durable consumer: the bench's physical reference.",
    )
    parser.add_argument("--until-idle", action="store_true", help="exit once caught up")
    return consumer_main(
        "limit",
        parser.parse_args(argv),
        lambda settings, args, stop: run_limit(settings, until_idle=args.until_idle, stop=stop),
    )


if __name__ == "__main__":
    raise SystemExit(main())
