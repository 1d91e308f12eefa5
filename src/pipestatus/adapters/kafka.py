"""Kafka through aiokafka: one consumer group, manual offsets, bounded batches.

Offsets are stored in PostgreSQL with the batch's effects; on assignment the consumer
seeks to them. After each database commit they are also committed to Kafka (best effort)
so standard lag tools see progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError

from pipestatus.adapters.lifecycle import AsyncClosing
from pipestatus.errors import BrokerError, BrokerRefusedError, InfrastructureError
from pipestatus.intake import InboundRecord
from pipestatus.settings import KafkaSettings

logger = logging.getLogger(__name__)

#: Kafka only mirrors progress for lag tools (the database holds the truth), so it is told
#: at most this often while records flow, and at once when the worker is caught up.
KAFKA_COMMIT_INTERVAL_S = 1.0

OffsetLoader = Callable[[Sequence[tuple[str, int]]], Awaitable[dict[tuple[str, int], int]]]


@contextlib.contextmanager
def map_kafka_errors() -> Iterator[None]:
    """Translates aiokafka errors at the edge by aiokafka's own verdict (``retriable``).

    Retriable ones (connection lost, leader moving, coordinator loading, ...) become
    ``BrokerError`` and are retried with backoff; the rest (authorization, authentication,
    unsupported settings) become ``BrokerRefusedError`` and stop the worker. A timeout
    is always worth another try, whatever its class says (aiokafka leaves
    ``KafkaTimeoutError`` at the base's ``False``).
    """
    try:
        yield
    except KafkaError as exc:
        if exc.retriable or isinstance(exc, KafkaTimeoutError):
            raise BrokerError(f"Kafka: {exc}") from exc
        raise BrokerRefusedError(f"Kafka refused: {exc!r}") from exc


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by consumers, producers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
        options["ssl_context"] = context
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def inbound_record(message: Any) -> InboundRecord:
    """An aiokafka ``ConsumerRecord`` as the plain value the pure intake reads."""
    return InboundRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple(message.headers or ()),
        timestamp_ms=message.timestamp,
    )


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Let the in-flight batch commit before another worker takes its partitions.
        async with self._source.processing:
            pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._source.seek_to_stored(assigned)


class KafkaSource(AsyncClosing):
    """The consumer side: fetch batches, seek to stored offsets, commit after the DB."""

    def __init__(self, settings: KafkaSettings, group_id: str, load_offsets: OffsetLoader) -> None:
        self._settings = settings
        self._group_id = group_id
        self._load_offsets = load_offsets
        self._consumer: AIOKafkaConsumer | None = None
        self._closed = False
        self._unmirrored: dict[tuple[str, int], int] = {}
        #: Per partition, the offset stored with the data when it was assigned.
        self._floors: dict[tuple[str, int], int] = {}
        self._mirrored_at = -KAFKA_COMMIT_INTERVAL_S
        self.clock = time.monotonic
        #: Held while a batch is processed; a rebalance waits for it.
        self.processing = asyncio.Lock()

    @property
    def topics(self) -> list[str]:
        return sorted({*self._settings.topics, *self._settings.shared_topics})

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("KafkaSource is not open")
        return self._consumer

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError("KafkaSource cannot be reopened")
        self._consumer = AIOKafkaConsumer(
            **client_options(self._settings),
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset=self._settings.auto_offset_reset,
            fetch_max_bytes=self._settings.max_batch_bytes,
            # aiokafka's default is 500 ms; a broker that holds idle fetches for part of it
            # (Tansu: about half) adds that much delay to the first event after a quiet spell.
            fetch_max_wait_ms=self._settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=min(self._settings.max_batch_bytes, 8 * 1024 * 1024),
        )
        self._consumer.subscribe(topics=self.topics, listener=_SeekToStoredOffsets(self))
        with map_kafka_errors():
            await self._consumer.start()
        return self

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._consumer is not None:
            await self.flush_commits()
            with contextlib.suppress(KafkaError):
                await self._consumer.stop()

    async def seek_to_stored(self, assigned: set[TopicPartition]) -> None:
        """Starts every newly assigned partition exactly at the offset stored with the data.

        aiokafka initialises positions from Kafka's committed offsets (a mirror that lags the
        database by up to ``KAFKA_COMMIT_INTERVAL_S``) and starts fetching while this
        listener awaits the database: records from there could reach a batch before the seek
        (docs/reliability.md, "Stored offsets are authoritative"). So the partitions are
        paused before the first await and resumed after the seek, and ``fetch`` drops
        anything below the stored offsets.
        """
        if not assigned:
            return
        self.consumer.pause(*assigned)
        try:
            stored = await self._load_offsets([(tp.topic, tp.partition) for tp in assigned])
        except InfrastructureError as exc:
            # Kafka's committed offsets are behind at worst: effects stay deduplicated.
            logger.warning("stored offsets unreadable, starting from Kafka's: %s", exc)
            stored = {}
        current = self.consumer.assignment()
        for tp in assigned & current:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                self.consumer.seek(tp, offset)
                self._floors[(tp.topic, tp.partition)] = offset
        self.consumer.resume(*(assigned & current))
        logger.info("partitions assigned count=%d seeked_to_stored=%d", len(assigned), len(stored))

    async def fetch(self) -> list[InboundRecord]:
        """One bounded batch (records, bytes, wait), possibly empty."""
        with map_kafka_errors():
            batches = await self.consumer.getmany(
                timeout_ms=self._settings.max_batch_wait_ms,
                max_records=self._settings.max_batch_records,
            )
        return self.above_floors(batches)

    def above_floors(self, batches: dict[TopicPartition, list[Any]]) -> list[InboundRecord]:
        """The fetched records, less any below the offset stored for their partition."""
        records: list[InboundRecord] = []
        for tp, messages in batches.items():
            floor = self._floors.get((tp.topic, tp.partition), 0)
            if messages and messages[0].offset < floor:
                logger.warning(
                    "dropped records below the stored offset topic=%s partition=%d floor=%d",
                    tp.topic,
                    tp.partition,
                    floor,
                )
                messages = [message for message in messages if message.offset >= floor]
            records.extend(inbound_record(message) for message in messages)
        return records

    async def mirror_offsets(self, next_offsets: dict[tuple[str, int], int]) -> None:
        """Mirrors committed progress to Kafka, at most every ``KAFKA_COMMIT_INTERVAL_S``."""
        for position, offset in next_offsets.items():
            self._unmirrored[position] = max(offset, self._unmirrored.get(position, 0))
        if self.clock() - self._mirrored_at >= KAFKA_COMMIT_INTERVAL_S:
            await self.flush_commits()

    async def flush_commits(self) -> None:
        """Mirrors what is not yet mirrored; failures are harmless (the DB is the truth)."""
        pending, self._unmirrored = self._unmirrored, {}
        self._mirrored_at = self.clock()
        assigned = self.consumer.assignment()
        offsets = {
            tp: offset
            for (topic, partition), offset in pending.items()
            if (tp := TopicPartition(topic, partition)) in assigned
        }
        if not offsets:
            return
        try:
            async with asyncio.timeout(5):
                await self.consumer.commit(offsets)
        except (KafkaError, TimeoutError) as exc:
            logger.debug("kafka offset commit skipped: %s", exc)

    async def lag(self) -> dict[tuple[str, int], int]:
        """Messages behind the end of each assigned partition."""
        assigned = sorted(self.consumer.assignment())
        if not assigned:
            return {}
        with map_kafka_errors():
            ends = await self.consumer.end_offsets(assigned)
            return {
                (tp.topic, tp.partition): max(0, ends[tp] - await self.consumer.position(tp))
                for tp in assigned
            }

    async def caught_up(self) -> bool:
        """True when partitions are assigned and every one is read to its end."""
        lag = await self.lag()
        return bool(lag) and not any(lag.values())


class DeadLetterMirror:
    """Optionally copies dead letters to a Kafka topic with Kafka-Connect-style headers."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Self:
        if self._settings.dead_letter_topic:
            self._producer = AIOKafkaProducer(
                **client_options(self._settings), enable_idempotence=False, acks="all"
            )
            with map_kafka_errors():
                await self._producer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, letters: Sequence[tuple[InboundRecord, str, str, str]]) -> None:
        """``letters``: (record, reason, stage, message). Best effort, after the DB commit."""
        if self._producer is None or not letters:
            return
        topic = self._settings.dead_letter_topic
        try:
            for record, reason, stage, message in letters:
                headers = [
                    *record.headers,
                    ("__connect.errors.topic", record.topic.encode()),
                    ("__connect.errors.partition", str(record.partition).encode()),
                    ("__connect.errors.offset", str(record.offset).encode()),
                    ("__connect.errors.stage", stage.encode()),
                    ("__connect.errors.exception.class.name", reason.encode()),
                    ("__connect.errors.exception.message", message.encode()[:4096]),
                ]
                await self._producer.send(topic, record.value, key=record.key, headers=headers)
            await self._producer.flush()
        except KafkaError as exc:
            logger.warning("dead-letter mirror to %s failed: %s", topic, exc)
