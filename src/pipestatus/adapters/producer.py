"""Publishing the ingress's records to Kafka: an acknowledgement or an error, never a guess.

``acks=all``: a record counts as stored once every in-sync replica has it. No idempotent
producer (the embedded broker lacks it): a send that times out may still land, and the
sender's retry then lands again; the event identity (``ce_id`` = webhook id) makes the
worker apply it once. A broker that is down at start is not fatal: the producer is
(re)started on the next publish, so the ingress answers 503 until the broker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipestatus.adapters.kafka import client_options, map_kafka_errors
from pipestatus.adapters.lifecycle import AsyncClosing
from pipestatus.edge.envelope import OutboundRecord
from pipestatus.errors import BrokerError
from pipestatus.settings import KafkaSettings

logger = logging.getLogger(__name__)

LINGER_MS = 5


class KafkaPublisher(AsyncClosing):
    """Sends one record at a time and waits for the broker's acknowledgement."""

    def __init__(self, settings: KafkaSettings, *, timeout_s: float) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> Self:
        with contextlib.suppress(BrokerError):
            await self._started()  # best effort: publish retries
        return self

    async def close(self) -> None:
        self._closed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop(producer)

    async def publish(self, record: OutboundRecord) -> tuple[int, int]:
        """(partition, offset) once acknowledged; ``BrokerError`` if not within the bound."""
        try:
            async with asyncio.timeout(self._timeout_s):
                producer = await self._started()
                with map_kafka_errors():
                    sent = await producer.send_and_wait(
                        record.topic, record.value, key=record.key, headers=list(record.headers)
                    )
        except TimeoutError as exc:
            raise BrokerError(f"Kafka did not acknowledge within {self._timeout_s:g}s") from exc
        return sent.partition, sent.offset

    async def reachable(self) -> bool:
        """True when the broker answers a metadata request now (for ``/readyz``)."""
        try:
            async with asyncio.timeout(2):
                producer = await self._started()
                return bool(await producer.client.force_metadata_update())
        except (TimeoutError, BrokerError, KafkaError):
            return False

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._closed:
                raise BrokerError("publisher is closed")
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                **client_options(self._settings),
                acks="all",
                enable_idempotence=False,
                # Concurrent requests share produce requests (fewer syscalls under load)
                # for at most this long; an idle ingress answers as fast as before.
                linger_ms=LINGER_MS,
            )
            try:
                with map_kafka_errors():
                    await producer.start()
            except BaseException:
                await _stop(producer)
                raise
            self._producer = producer
            return producer


async def _stop(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(KafkaError, TimeoutError):
        async with asyncio.timeout(10):
            await producer.stop()  # flushes what is still buffered
