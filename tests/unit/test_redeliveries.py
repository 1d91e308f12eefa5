"""The re-delivery memo: a copy gets exactly what ``prepare`` would have given it."""

from __future__ import annotations

import tracemalloc

from pipestatus.domain.states import Provider
from pipestatus.intake import Accepted, InboundRecord, Rejected, Routing, prepare
from pipestatus.redeliveries import MAX_REMEMBERED_BYTES, RedeliveryMemo, entry_charge
from pipestatus.settings import DEFAULT_CLOUDEVENTS_TYPES
from pipestatus_dev.world import generate

ROUTING = Routing(
    topics={provider.value: provider for provider in Provider},
    cloudevents_type_prefixes=DEFAULT_CLOUDEVENTS_TYPES,
)


def _records(events: int) -> list[InboundRecord]:
    workload = generate(events, seed=7)
    return [
        InboundRecord(r.provider.value, offset % 4, offset, r.key, r.value, r.headers)
        for offset, r in enumerate(workload.records)
    ]


def test_memo_gives_every_record_what_prepare_gives_it() -> None:
    """On a workload with copies, reordering and invalid records, results are equal one by one
    (same record, offset included, same identity, observations and rejection reason)."""
    records = _records(3000)
    memo = RedeliveryMemo(ROUTING, budget_bytes=1024 * 1024)
    for record in records:
        assert _comparable(memo.prepare(record)) == _comparable(prepare(record, ROUTING))
    assert memo.hits > 0.05 * len(records)  # the copies were served from memory


def _comparable(result: Accepted | Rejected) -> object:
    if isinstance(result, Accepted):
        return result
    error = result.error  # exceptions compare by identity: compare what a dead letter keeps
    return (result.record, result.provider, type(error), error.reason, error.path, str(error))


def test_a_copy_is_bound_to_its_own_position() -> None:
    first, *_ = _records(50)
    copy = InboundRecord(first.topic, 3, 999, b"other-key", first.value, first.headers)
    memo = RedeliveryMemo(ROUTING)
    original = memo.prepare(first)
    again = memo.prepare(copy)
    assert memo.hits == 1
    assert isinstance(original, Accepted)
    assert isinstance(again, Accepted)
    assert again.record is copy
    assert again.event_id == original.event_id


def test_headers_and_topic_are_part_of_the_content() -> None:
    """Another webhook-id or another topic may mean another identity or provider."""
    first, *_ = _records(50)
    memo = RedeliveryMemo(ROUTING)
    memo.prepare(first)
    other_headers = InboundRecord(first.topic, 0, 1, None, first.value, (("webhook-id", b"m"),))
    other_topic = InboundRecord("unmapped", 0, 2, None, first.value, first.headers)
    assert isinstance(memo.prepare(other_headers), Accepted)
    rejected = memo.prepare(other_topic)
    assert isinstance(rejected, Rejected)
    assert rejected.error.reason == "unknown_provider"
    assert memo.hits == 0


def test_rejections_are_remembered_too_and_memory_is_bounded() -> None:
    broken = [InboundRecord("codat", 0, n, None, b"{not json %d" % n) for n in range(3)]
    memo = RedeliveryMemo(ROUTING, budget_bytes=2 * entry_charge(broken[0]))
    for record in broken:
        assert isinstance(memo.prepare(record), Rejected)
    copy_of_first = InboundRecord("codat", 0, 10, None, broken[0].value)
    copy_of_last = InboundRecord("codat", 0, 11, None, broken[2].value)
    memo.prepare(copy_of_first)  # evicted: room for two, first in, first out
    assert memo.hits == 0
    result = memo.prepare(copy_of_last)
    assert memo.hits == 1
    assert isinstance(result, Rejected)
    assert result.record is copy_of_last
    assert result.error.reason == "not_json"


def test_huge_values_are_not_remembered() -> None:
    memo = RedeliveryMemo(ROUTING)
    huge = b'{"x": "' + b"a" * MAX_REMEMBERED_BYTES + b'"}'
    for offset in range(2):
        memo.prepare(InboundRecord("codat", 0, offset, None, huge))
    assert memo.hits == 0


def _large_records(count: int, size: int) -> list[InboundRecord]:
    """Distinct valid records of about ``size`` bytes (a padded Krenalis run)."""
    first = next(r for r in _records(50) if r.topic == "krenalis" and r.value)
    records = []
    for n in range(count):
        padding = b"x" * (size - len(first.value or b""))
        value = (first.value or b"").replace(b'"id":', b'"pad%d": "%s", "id":' % (n, padding), 1)
        records.append(InboundRecord("krenalis", 0, n, None, value, first.headers))
    return records


def test_memory_is_bounded_by_bytes_not_by_count() -> None:
    """60 KB records: the memo's accounted and its real (tracemalloc) memory stay within its
    budget however many distinct records pass, and copies of recent ones are still served."""
    budget = 4 * 1024 * 1024
    records = _large_records(400, 60_000)  # 24 MB of content: six times the budget
    assert all(len(r.value or b"") >= 60_000 for r in records)
    assert all(isinstance(prepare(r, ROUTING), Accepted) for r in records[:3])
    memo = RedeliveryMemo(ROUTING, budget_bytes=budget)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for record in records:
            memo.prepare(record)
            assert memo.held_bytes <= budget
        del record
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= budget * 1.25, f"memo holds {held} bytes for a {budget}-byte budget"
    copy = InboundRecord("krenalis", 1, 999, None, records[-1].value, records[-1].headers)
    memo.prepare(copy)
    assert memo.hits == 1
