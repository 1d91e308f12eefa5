"""A newly assigned partition starts exactly at the offset stored with the data.

The race this guards against (docs/reliability.md): aiokafka initialises positions from
Kafka's committed offsets, which lag the database, and keeps fetching while the
assignment listener awaits the database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from pipestatus.adapters.kafka import KafkaSource
from pipestatus.errors import StoreUnavailableError
from pipestatus.settings import KafkaSettings

A, B = TopicPartition("runs.codat", 0), TopicPartition("runs.codat", 1)


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = b"{}"
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 0


class _Consumer:
    """Hand-written stand-in recording pause, seek and resume, in order."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.calls: list[tuple[str, object]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def pause(self, *partitions: TopicPartition) -> None:
        self.calls.append(("pause", frozenset(partitions)))

    def resume(self, *partitions: TopicPartition) -> None:
        self.calls.append(("resume", frozenset(partitions)))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.calls.append(("seek", (tp.partition, offset)))


def _source(consumer: _Consumer, load: Any) -> KafkaSource:
    source = KafkaSource(KafkaSettings(), "group", load)
    source._consumer = consumer
    return source


async def test_partitions_are_paused_before_the_database_is_asked() -> None:
    consumer = _Consumer({A, B})
    loaded = asyncio.Event()

    async def load(partitions: Any) -> dict[tuple[str, int], int]:
        # While the listener waits here, nothing of A or B may be fetchable.
        assert consumer.calls == [("pause", frozenset({A, B}))]
        loaded.set()
        return {("runs.codat", 0): 10_375}

    source = _source(consumer, load)
    await source.seek_to_stored({A, B})
    assert loaded.is_set()
    assert consumer.calls == [
        ("pause", frozenset({A, B})),
        ("seek", (0, 10_375)),  # B has no stored offset: the reset policy decides
        ("resume", frozenset({A, B})),
    ]


async def test_records_below_the_stored_offset_never_reach_a_batch() -> None:
    """Records fetched from Kafka's lagging committed offset are dropped, the rest kept."""

    async def load(partitions: Any) -> dict[tuple[str, int], int]:
        return {("runs.codat", 0): 10_375}

    source = _source(_Consumer({A, B}), load)
    await source.seek_to_stored({A, B})
    batches = {
        A: [_Message("runs.codat", 0, offset) for offset in range(9_375, 10_400)],
        B: [_Message("runs.codat", 1, offset) for offset in range(5)],
    }
    records = source.above_floors(batches)
    assert [r.offset for r in records if r.partition == 0] == list(range(10_375, 10_400))
    assert [r.offset for r in records if r.partition == 1] == [0, 1, 2, 3, 4]


async def test_an_unreadable_database_still_resumes_the_partitions() -> None:
    consumer = _Consumer({A})

    async def load(partitions: Any) -> dict[tuple[str, int], int]:
        raise StoreUnavailableError("down")

    await _source(consumer, load).seek_to_stored({A})
    assert consumer.calls == [("pause", frozenset({A})), ("resume", frozenset({A}))]


async def test_partitions_revoked_meanwhile_are_neither_seeked_nor_resumed() -> None:
    consumer = _Consumer({A, B})

    async def load(partitions: Any) -> dict[tuple[str, int], int]:
        consumer.assigned = {A}  # B moved to another worker during the await
        return {("runs.codat", 0): 3, ("runs.codat", 1): 4}

    await _source(consumer, load).seek_to_stored({A, B})
    assert consumer.calls == [
        ("pause", frozenset({A, B})),
        ("seek", (0, 3)),
        ("resume", frozenset({A})),
    ]
