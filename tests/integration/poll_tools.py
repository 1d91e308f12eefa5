"""Serving a simulator, configuring ``pipestatus poll`` for it, reading what it published."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from starlette.applications import Starlette

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.adapters.polling import PollMetrics
from pipestatus.poller import run_poller
from pipestatus.settings import Settings
from pipestatus_dev.embedded import LOOPBACK
from tests.integration.kafka_tools import create_topics


async def fresh_topic(bootstrap: str, provider: str) -> str:
    """A new one-partition topic for one test's records."""
    name = f"runs.{provider}.poll.{uuid.uuid4().hex[:10]}"
    await create_topics(bootstrap, [name])
    return name


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """The app on a free loopback port; yields its base URL."""
    async with AsgiServer(app, host=LOOPBACK, port=0, name="simulator") as server:
        yield server.url


def poll_settings(
    bootstrap: str, database_url: str, topic: str, source: dict[str, Any], **poll: Any
) -> Settings:
    return Settings(
        kafka={"bootstrap_servers": bootstrap, "topics": {topic: source["provider"]}},
        database={"url": database_url},
        poll={"sources": [source], "retry_initial_s": 0.1, "retry_max_s": 5, **poll},
        http={"enabled": False},
    )


async def one_round(settings: Settings, metrics: PollMetrics | None = None) -> list[str]:
    """``pipestatus poll --once`` in this process; the sources that failed."""
    return await run_poller(settings, stop=asyncio.Event(), once=True, metrics=metrics)


async def published(bootstrap: str, topic: str) -> list[Any]:
    """Every record on the (one-partition) topic so far."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        records: list[Any] = []
        while len(records) < end:
            batches = await consumer.getmany(partition, timeout_ms=1000)
            records.extend(batches.get(partition, []))
        return records
    finally:
        await consumer.stop()


def headers(record: Any) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def value(record: Any) -> Any:
    return json.loads(record.value)


def sample(metrics: PollMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found
