"""The bench's topics, and producing the backlog to them before any consumer starts."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipestatus.adapters.kafka import client_options
from pipestatus.domain.states import Provider
from pipestatus.settings import KafkaSettings
from pipestatus_dev.bench.progress import Progress
from pipestatus_dev.world import Workload

PARTITIONS = 4


async def create_topics(kafka: KafkaSettings, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


async def delete_topics(kafka: KafkaSettings, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(kafka))
    try:
        await admin.start()
        await admin.delete_topics(list(names))
    except Exception as exc:  # noqa: BLE001  # best-effort clean-up on a configured cluster
        sys.stderr.write(f"bench: could not delete the bench topics: {exc}\n")
    finally:
        await admin.close()


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
