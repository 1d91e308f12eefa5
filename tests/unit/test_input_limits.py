"""The payload size limit is enforced before any decoding (issue #7, security).

An oversized value is rejected as ``payload_too_large`` without being UTF-8 decoded or
handed to a JSON parser, and its dead letter keeps a bounded copy plus the digest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pydantic_core
import pytest

from pipestatus.intake import InboundRecord, Rejected, Routing, prepare
from pipestatus.service import TRUNCATED_COPY_BYTES, dead_letter
from pipestatus.settings import DEFAULT_CLOUDEVENTS_TYPES, DEFAULT_TOPICS

LIMIT = 4096
ROUTING = Routing(
    topics=DEFAULT_TOPICS,
    cloudevents_type_prefixes=DEFAULT_CLOUDEVENTS_TYPES,
    max_payload_bytes=LIMIT,
)
PULL = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "codat" / "pull_operation.json").read_text()
)
STRUCTURED = (("content-type", b"application/cloudevents+json"),)


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spies on every JSON decoder pipestatus could reach; records the sizes parsed."""
    calls: list[int] = []
    real_from_json, real_loads = pydantic_core.from_json, json.loads

    def from_json(data: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(data))
        return real_from_json(data, *args, **kwargs)

    def loads(data: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(data))
        return real_loads(data, *args, **kwargs)

    monkeypatch.setattr(pydantic_core, "from_json", from_json)
    monkeypatch.setattr(json, "loads", loads)
    return calls


def padded(size: int) -> bytes:
    """A valid pull operation, padded with whitespace to exactly ``size`` bytes."""
    raw = json.dumps(PULL).encode()
    return raw + b" " * (size - len(raw))


def record(value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> InboundRecord:
    return InboundRecord("runs.codat", 3, 42, b"key", value, headers)


@pytest.mark.parametrize("headers", [(), STRUCTURED], ids=["plain", "structured-cloudevent"])
def test_an_oversized_value_is_rejected_without_being_parsed(
    decoder_calls: list[int], headers: tuple[tuple[str, bytes], ...]
) -> None:
    result = prepare(record(padded(LIMIT + 1), headers), ROUTING)
    assert isinstance(result, Rejected)
    assert result.error.reason == "payload_too_large"
    assert result.error.stage == "decode"
    assert decoder_calls == [], "the JSON decoder saw an oversized value"


def test_the_size_check_comes_before_utf8_decoding(decoder_calls: list[int]) -> None:
    """Invalid UTF-8 over the limit is too large, not "not UTF-8": nothing was decoded."""
    result = prepare(record(b"\xff" * (LIMIT * 10)), ROUTING)
    assert isinstance(result, Rejected)
    assert result.error.reason == "payload_too_large"
    assert decoder_calls == []


def test_a_value_at_the_limit_is_parsed_once(decoder_calls: list[int]) -> None:
    result = prepare(record(padded(LIMIT)), ROUTING)
    assert not isinstance(result, Rejected), result
    assert decoder_calls == [LIMIT]


def test_the_dead_letter_keeps_a_bounded_copy_and_the_full_digest() -> None:
    value = padded(TRUNCATED_COPY_BYTES * 3)
    routing = Routing(DEFAULT_TOPICS, DEFAULT_CLOUDEVENTS_TYPES, max_payload_bytes=len(value) - 1)
    result = prepare(record(value), routing)
    assert isinstance(result, Rejected)
    row = dead_letter(result)
    assert row.truncated is True
    assert row.value == value[:TRUNCATED_COPY_BYTES]
    assert row.value_size == len(value)
    assert row.value_sha256 == hashlib.sha256(value).hexdigest()
    assert (row.topic, row.partition, row.offset, row.key) == ("runs.codat", 3, 42, b"key")
