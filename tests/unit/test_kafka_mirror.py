"""Offsets are mirrored to Kafka for lag tools at most once a second, and fully when idle."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from pipestatus.adapters import kafka
from pipestatus.adapters.kafka import KafkaSource
from pipestatus.settings import KafkaSettings


class _Consumer:
    """Hand-written stand-in for the two consumer methods the mirror uses."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def _source(consumer: _Consumer) -> KafkaSource:
    async def no_offsets(_: Any) -> dict[tuple[str, int], int]:
        return {}

    source = KafkaSource(KafkaSettings(), "group", no_offsets)
    source._consumer = consumer
    return source


async def test_commits_are_coalesced_then_flushed() -> None:
    now = [100.0]
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer = _Consumer({a, b})
    source = _source(consumer)
    source.clock = lambda: now[0]

    await source.mirror_offsets({("t", 0): 5})  # first one goes out at once
    await source.mirror_offsets({("t", 0): 9, ("t", 1): 3})  # within the interval: held
    now[0] += 0.5
    await source.mirror_offsets({("t", 0): 7})  # an older offset never moves a partition back
    assert consumer.commits == [{a: 5}]

    now[0] += kafka.KAFKA_COMMIT_INTERVAL_S
    await source.mirror_offsets({("t", 1): 4})
    assert consumer.commits == [{a: 5}, {a: 9, b: 4}]

    await source.mirror_offsets({("t", 0): 12})
    await source.flush_commits()  # caught up: everything goes out now
    assert consumer.commits[-1] == {a: 12}
    await source.flush_commits()  # nothing pending: nothing sent
    assert len(consumer.commits) == 3


async def test_revoked_partitions_are_not_committed() -> None:
    kept = TopicPartition("t", 0)
    consumer = _Consumer({kept})
    source = _source(consumer)
    await source.mirror_offsets({("t", 0): 2, ("t", 1): 8})
    assert consumer.commits == [{kept: 2}]
