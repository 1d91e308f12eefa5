"""The bench workload: deterministic, in the documented proportions, and valid where it says so."""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import cache

import pytest

from pipestatus.domain.machine import converge
from pipestatus.domain.observation import Observation
from pipestatus.domain.states import Provider
from pipestatus.errors import EventError
from pipestatus.intake import Accepted, InboundRecord, Routing, prepare
from pipestatus.providers import parse_record
from pipestatus_dev.world import (
    DUPLICATE_SHARE,
    INVALID_SHARE,
    REORDERED_SHARE,
    BenchRecord,
    Workload,
    generate,
)

EVENTS = 12_000
TOPICS = {f"runs.{provider.value}": provider for provider in Provider}
ROUTING = Routing(topics=TOPICS, cloudevents_type_prefixes={})


@cache
def workload() -> Workload:
    return generate(EVENTS, seed=11)


def share(count: int) -> float:
    return count / EVENTS


def test_same_seed_same_records_other_seed_other_records() -> None:
    """The generator is a pure function of (events, seed)."""
    first, again, other = generate(3_000, seed=5), generate(3_000, seed=5), generate(3_000, seed=6)
    assert first.records == again.records
    assert first.expected == again.expected
    assert [r.value for r in first.records] != [r.value for r in other.records]


@pytest.mark.parametrize("events", [1, 7, 100, 2_345])
def test_exactly_the_requested_number_of_records(events: int) -> None:
    assert len(generate(events, seed=3).records) == events


def test_documented_proportions() -> None:
    """~15 % duplicates, ~10 % reordered (late) deliveries, ~1 % invalid records."""
    roles = Counter(record.role for record in workload().records)
    late = sum(record.late for record in workload().records)
    assert share(roles["duplicate"]) == pytest.approx(DUPLICATE_SHARE, abs=0.005)
    assert share(roles["invalid"]) == pytest.approx(INVALID_SHARE, abs=0.002)
    assert share(late) == pytest.approx(REORDERED_SHARE, abs=0.005)


def test_late_records_really_arrive_after_their_successor() -> None:
    """Measured on the delivery order, not on the flags: a late record follows a later step."""
    position: dict[tuple[int, int], int] = {}
    for index, record in enumerate(workload().records):
        if record.role == "original":
            position[(record.life, record.step)] = index
    overtaken = {
        (life, step)
        for (life, step), at in position.items()
        if (life, step + 1) in position and position[(life, step + 1)] < at
    }
    flagged = {(r.life, r.step) for r in workload().records if r.late}
    assert overtaken == flagged


def test_duplicates_are_exact_copies_delivered_after_their_original() -> None:
    seen: set[tuple[Provider, bytes, bytes, tuple[tuple[str, bytes], ...]]] = set()
    for record in workload().records:
        identity = (record.provider, record.key, record.value, record.headers)
        if record.role == "duplicate":
            assert identity in seen
        seen.add(identity)


def test_all_four_providers_with_reruns_and_every_payload_kind() -> None:
    records = workload().records
    providers = Counter(record.provider for record in records)
    assert set(providers) == set(Provider)
    assert all(share(count) >= 0.10 for count in providers.values()), providers
    kinds = {parse_record(r.value, r.provider).kind for r in records if r.role != "invalid"}
    assert kinds == {
        "zoho_dataprep.job_summary",
        "krenalis.pipeline_run",
        "codat.pull_operation",
        "codat.read_completed",
        "codat.legacy_sync_error",
        "codat.legacy_sync_completed",
        "nuvo.execution",
        "nuvo.execution_response",
        "nuvo.create_response",
    }
    reruns = {provider for (provider, _), run in workload().expected.items() if run.attempt > 1}
    assert reruns == {"zoho_dataprep", "nuvo"}
    states = {run.state for run in workload().expected.values()}
    assert states >= {"succeeded", "failed", "cancelled", "skipped"}


def test_valid_payloads_parse_and_invalid_ones_are_rejected_for_the_stated_reason() -> None:
    reasons: Counter[str] = Counter()
    for record in workload().records:
        if record.role != "invalid":
            parse_record(record.value, record.provider)  # raises if the payload is invalid
            continue
        with pytest.raises(EventError) as caught:
            parse_record(record.value, record.provider)
        assert caught.value.reason == record.expected_reason
        reasons[caught.value.reason] += 1
    assert set(reasons) == {
        "not_json",
        "invalid_payload",
        "unmapped_status",
        "unknown_payload_kind",
        "provider_api_error",
    }


def inbound(record: BenchRecord, offset: int) -> InboundRecord:
    topic = f"runs.{record.provider.value}"
    return InboundRecord(topic, 0, offset, record.key, record.value, record.headers)


def test_runs_converge_to_the_expected_final_state() -> None:
    """Folding the workload in delivery order (the pure worker path) ends where it says."""
    seen: set[str] = set()
    by_run: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for offset, record in enumerate(workload().records):
        prepared = prepare(inbound(record, offset), ROUTING)
        if not isinstance(prepared, Accepted):
            assert record.role == "invalid"
            continue
        if prepared.event_id in seen:
            assert record.role == "duplicate"
            continue
        assert record.role == "original"
        seen.add(prepared.event_id)
        for observation in prepared.parsed.observations:
            by_run[(observation.provider.value, observation.run_id)].append(observation)
    assert by_run.keys() == workload().expected.keys()
    for key, observations in by_run.items():
        final, _ = converge(observations)
        assert final is not None
        expected = workload().expected[key]
        assert (final.state.value, final.attempt) == (expected.state, expected.attempt), key
