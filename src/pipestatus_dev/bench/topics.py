"""The bench's topic names, and producing the backlog to them before any consumer starts.

The topics themselves are created by :mod:`pipestatus_dev.provision.topics`.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer

from pipestatus.adapters.kafka import client_options
from pipestatus.domain.states import Provider
from pipestatus.settings import KafkaSettings
from pipestatus_dev.bench.progress import Progress
from pipestatus_dev.world import Workload

PARTITIONS = 4


def topic_names(prefix: str) -> dict[Provider, str]:
    return {provider: f"{prefix}.runs.{provider.value}" for provider in Provider}


def new_producer(kafka: KafkaSettings, *, linger_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(kafka),
        enable_idempotence=False,  # Tansu has no InitProducerId
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
    )


async def produce_backlog(
    kafka: KafkaSettings, topics: dict[Provider, str], workload: Workload, progress: Progress
) -> dict[tuple[str, int], int]:
    """Produces every record; returns the end offset of each partition."""
    producer = new_producer(kafka, linger_ms=5)
    await producer.start()
    total = len(workload.records)
    started = time.monotonic()
    try:
        futures = []
        for index, record in enumerate(workload.records, 1):
            futures.append(
                await producer.send(
                    topics[record.provider],
                    record.value,
                    key=record.key,
                    headers=list(record.headers),
                )
            )
            if index % 1000 == 0 or index == total:
                rate = index / max(time.monotonic() - started, 1e-9)
                progress.every(
                    "produce",
                    2.0,
                    f"producing backlog {100 * index // total}% "
                    f"({index}/{total}, {rate:,.0f} rec/s)",
                )
        await producer.flush()
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    ends: dict[tuple[str, int], int] = {}
    for meta in sent:
        position = (meta.topic, meta.partition)
        ends[position] = max(ends.get(position, 0), meta.offset + 1)
    progress.say(
        f"produced {total} records ({sum(len(r.value) for r in workload.records) / 1e6:.1f} MB) "
        f"in {time.monotonic() - started:.1f}s"
    )
    return ends
