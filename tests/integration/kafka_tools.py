"""Producing test traffic and configuring a worker for one test (real broker, real DB)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from pipestatus.domain.states import Provider
from pipestatus.settings import Settings
from pipestatus_dev.provision import topics as provision_topics


@dataclass(frozen=True)
class Message:
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None


def unique_topics() -> dict[str, Provider]:
    """One fresh topic per provider, so tests never see each other's records."""
    suffix = uuid.uuid4().hex[:10]
    return {f"runs.{provider.value}.{suffix}": provider for provider in Provider}


def topic_for(topics: dict[str, Provider], provider: Provider) -> str:
    return next(topic for topic, p in topics.items() if p is provider)


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    """The provisioning layer's topic creation, with the tests' positional partitions."""
    await provision_topics.create_topics(bootstrap, names, partitions=partitions)


async def produce(bootstrap: str, topic: str, messages: Sequence[Message]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        for message in messages:
            await producer.send(
                topic,
                message.value,
                key=message.key,
                headers=list(message.headers),
                partition=message.partition,
            )
        await producer.flush()
    finally:
        await producer.stop()


def worker_settings(
    bootstrap: str, database_url: str, topics: dict[str, Provider], *, group: str | None = None
) -> Settings:
    """Settings for a worker on this test's topics and database, with short waits."""
    return Settings(
        kafka={
            "bootstrap_servers": bootstrap,
            "group_id": group or f"test-{uuid.uuid4().hex[:8]}",
            "topics": {name: p.value for name, p in topics.items()},
            "max_batch_wait_ms": 100,
            "max_batch_records": 500,
        },
        database={"url": database_url},
        worker={"idle_polls": 2, "retry_initial_s": 0.2, "retry_max_s": 2},
        http={"port": 0},
    )
