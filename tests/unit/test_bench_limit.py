"""The limit consumer's batch: every value decoded, every raw record kept, next offsets."""

from __future__ import annotations

from dataclasses import dataclass

from pipestatus_dev.bench.limit import COLUMNS, decode_batch


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def test_every_record_is_kept_and_each_partition_gets_its_next_offset() -> None:
    """Undecodable values are counted but still stored: the consumer drops nothing."""
    messages = [
        Message("a", 0, 7, b"k", b'{"x": 1}'),
        Message("a", 0, 8, None, b'{"trunc'),
        Message("a", 1, 3, None, b""),
        Message("b", 0, 0, b"k2", None),
        Message("a", 1, 4, None, b"[1, 2]"),
    ]
    rows, ends, undecodable = decode_batch(messages)
    assert rows == [(m.topic, m.partition, m.offset, m.key, m.value) for m in messages]
    assert len(rows[0]) == len(COLUMNS)
    assert ends == {("a", 0): 9, ("a", 1): 5, ("b", 0): 1}
    assert undecodable == 3
