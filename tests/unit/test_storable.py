"""What PostgreSQL cannot store never stops the worker (issue 11, items 1 and 2).

Intake refuses NUL, lone surrogates and integers beyond ``integer`` as ``invalid_payload``
with a path; dead-letter headers store any bytes; whatever still reaches the database and
is refused is isolated by ``commit_batch``'s bisect (here against a fake store).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import asyncpg.exceptions._base as asyncpg_base
import pytest

from pipestatus.adapters.postgres import map_pg_errors
from pipestatus.errors import StoreUnavailableError, UnstorableRecordError
from pipestatus.intake import Accepted, InboundRecord, Prepared, Rejected, Routing, prepare
from pipestatus.replay import _header
from pipestatus.service import commit_batch, dead_letter
from pipestatus.settings import DEFAULT_CLOUDEVENTS_TYPES, DEFAULT_TOPICS
from tests.unit.fakes import FakeStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROUTING = Routing(topics=DEFAULT_TOPICS, cloudevents_type_prefixes=DEFAULT_CLOUDEVENTS_TYPES)


def fixture(provider: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / provider / f"{name}.json").read_text())
    return document


def record(value: bytes | None, *, topic: str, offset: int = 0, headers=()) -> InboundRecord:
    return InboundRecord(topic, 0, offset, None, value, headers)


def rejected(value: bytes, topic: str = "runs.krenalis", headers=()) -> Rejected:
    result = prepare(record(value, topic=topic, headers=headers), ROUTING)
    assert isinstance(result, Rejected), result
    dead_letter(result)  # always buildable
    return result


class TestIntake:
    def test_nul_in_a_payload_string_is_invalid_payload_with_its_path(self) -> None:
        value = json.dumps(fixture("krenalis", "running") | {"id": "k\x00"}).encode()
        assert b"\\u0000" in value
        result = rejected(value)
        assert result.error.reason == "invalid_payload"
        assert result.error.path == "id"
        assert "NUL" in result.error.detail

    def test_nul_deep_in_a_payload_and_in_a_key(self) -> None:
        document = fixture("krenalis", "failed_pipeline_error")
        document["error"] = "boom\x00"
        assert rejected(json.dumps(document).encode()).error.path == "error"
        keyed = fixture("krenalis", "running") | {"odd\x00key": 1}
        result = rejected(json.dumps(keyed).encode())
        assert result.error.path == "odd\\x00key"  # escaped: the path itself is stored
        assert "\x00" not in dead_letter(result).field_path

    def test_nul_inside_a_json_in_string_field(self) -> None:
        document = fixture("zoho_dataprep", "succeeded")
        export = document["pipelinerun"]["pipelinetaskinstances"][3]["datasetexportaudit"]
        export["datasetexportauditmetric"]["quality"] = json.dumps({"valid": 1, "x": "\x00"})
        result = rejected(json.dumps(document).encode(), "runs.zoho-dataprep")
        assert result.error.reason == "invalid_payload"
        assert "quality" in result.error.path

    def test_escaped_backslash_u0000_is_not_a_nul(self) -> None:
        value = json.dumps(fixture("krenalis", "running") | {"id": "k\\u0000"}).encode()
        assert isinstance(prepare(record(value, topic="runs.krenalis"), ROUTING), Accepted)

    def test_lone_surrogate_is_invalid_payload_with_its_path(self) -> None:
        value = json.dumps(fixture("krenalis", "running") | {"id": "k\ud800"}).encode()
        result = rejected(value)
        assert (result.error.reason, result.error.path) == ("invalid_payload", "id")

    @pytest.mark.parametrize("header", ["webhook-id", "ce_id", "content-type"])
    def test_nul_in_an_identity_header(self, header: str) -> None:
        value = json.dumps(fixture("krenalis", "running")).encode()
        result = rejected(value, headers=((header, b"a\x00b"),))
        assert (result.error.reason, result.error.path) == ("invalid_payload", header)

    @pytest.mark.parametrize("count", [2**31 - 1, 10**12, 10**40])
    def test_zoho_rerun_count_beyond_integer(self, count: int) -> None:
        document = fixture("zoho_dataprep", "succeeded")
        document["pipelinerun"]["rerun_count"] = count
        result = rejected(json.dumps(document).encode(), "runs.zoho-dataprep")
        assert result.error.reason == "invalid_payload"
        assert result.error.path == "pipelinerun.rerun_count"

    def test_largest_storable_rerun_count_is_accepted(self) -> None:
        document = fixture("zoho_dataprep", "succeeded")
        document["pipelinerun"]["rerun_count"] = 2**31 - 2
        result = prepare(record(json.dumps(document).encode(), topic="runs.zoho-dataprep"), ROUTING)
        assert isinstance(result, Accepted)
        assert result.parsed.observations[0].attempt == 2**31 - 1


class TestDeadLetterHeaders:
    def test_any_bytes_and_names_become_jsonb_safe_and_round_trip(self) -> None:
        headers = (
            ("x-nul", b"a\x00b"),
            ("x-bin", b"\xff\xfe"),
            ("x-text", "café".encode()),
            ("name\x00nul", b"v"),
            ("x-none", b""),
        )
        result = rejected(b"not json", headers=headers)
        stored = dead_letter(result).headers
        assert stored == [
            {"key": "x-nul", "hex": "610062"},
            {"key": "x-bin", "hex": "fffe"},
            {"key": "x-text", "value": "café"},
            {"key_hex": "6e616d65006e756c", "value": "v"},
            {"key": "x-none", "value": ""},
        ]
        text = json.dumps(stored)
        assert "\\u0000" not in text
        assert tuple(_header(h) for h in json.loads(text)) == headers


class TestEdgeMapping:
    @pytest.mark.parametrize(
        "error",
        [
            asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"),
            asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape"),
            asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range"),
            asyncpg_base.DataError("invalid input for query argument $4 (out of int32 range)"),
        ],
    )
    def test_refused_values_become_unstorable(self, error: Exception) -> None:
        with pytest.raises(UnstorableRecordError) as raised, map_pg_errors():
            raise error
        assert not raised.value.retriable
        assert raised.value.reason == "unstorable"
        assert raised.value.__cause__ is error


# --- the bisect, against a fake store -------------------------------------------------


def batch(n: int) -> list[Prepared]:
    items: list[Prepared] = []
    for offset in range(n):
        document = fixture("krenalis", "running") | {"id": f"run-{offset}"}
        value = json.dumps(document).encode()
        items.append(prepare(record(value, topic="runs.krenalis", offset=offset), ROUTING))
    return items


@pytest.mark.parametrize(("size", "bad"), [(1, [0]), (8, [5]), (13, [0, 12]), (32, [3, 4, 30])])
async def test_bisect_sets_aside_exactly_the_refused_records(size: int, bad: list[int]) -> None:
    items = batch(size)
    poison = {item.event_id for i in bad if isinstance(item := items[i], Accepted)}
    store = FakeStore(poison=poison)
    report = await commit_batch(items, store=store, group_id="g")

    assert store.commits == 1  # one transaction holds effects and offsets
    done = store.tables
    assert done.offsets == {("g", "runs.krenalis", 0): size}
    letters = [letter.row for letter in done.dead_letters]
    assert sorted(letter.offset for letter in letters) == bad
    assert {letter.reason for letter in letters} == {"unstorable"}
    assert all(letter.stage == "store" and "invalid byte" in letter.message for letter in letters)
    good = {
        item.event_id for i, item in enumerate(items) if i not in bad and isinstance(item, Accepted)
    }
    assert set(done.events) == good
    outcomes = [(r.record.offset, r.reason) for r in report.results if r.reason]
    assert outcomes == [(i, "unstorable") for i in bad]
    assert len(report.results) == size


async def test_retriable_errors_are_not_bisected() -> None:
    store = FakeStore(fail_with=StoreUnavailableError("down"))
    with pytest.raises(StoreUnavailableError):
        await commit_batch(batch(4), store=store, group_id="g")
    assert store.transactions == 1


async def test_programming_errors_still_stop_loudly() -> None:
    store = FakeStore(fail_with=RuntimeError("bug"))
    with pytest.raises(RuntimeError):
        await commit_batch(batch(4), store=store, group_id="g")
    assert store.transactions == 1
