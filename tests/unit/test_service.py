"""The service layer (``commit_batch``, ``replay_dead_letters``) against in-memory ports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipestatus.domain.alerting import AlertRules
from pipestatus.domain.batch import Outcome
from pipestatus.domain.states import Provider, RunState
from pipestatus.errors import StoreUnavailableError
from pipestatus.intake import InboundRecord, Prepared, Routing, prepare
from pipestatus.replay import replay_dead_letters
from pipestatus.service import Alerting, commit_batch
from pipestatus.settings import DEFAULT_CLOUDEVENTS_TYPES, DEFAULT_TOPICS
from tests.unit.fakes import FakeStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "krenalis"
ROUTING = Routing(topics=DEFAULT_TOPICS, cloudevents_type_prefixes=DEFAULT_CLOUDEVENTS_TYPES)
TOPIC = "runs.krenalis"
GROUP = "g"


def krenalis(name: str, **fields: Any) -> bytes:
    document: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return json.dumps(document | fields).encode()


RUNNING = krenalis("running", id="r1")
SUCCEEDED = krenalis(
    "succeeded_with_warnings",
    id="r1",
    pipeline="9xRb2TfY7uKc",
    startTime="2026-07-01T09:00:00.004Z",
    endTime="2026-07-01T09:05:00Z",
)
FAILED = krenalis("failed_pipeline_error", id="r2")


def batch(*values: bytes | None, start: int = 0, routing: Routing = ROUTING) -> list[Prepared]:
    return [
        prepare(InboundRecord(TOPIC, 0, start + i, None, value, ()), routing)
        for i, value in enumerate(values)
    ]


def outcomes(report: Any) -> list[Outcome]:
    return [result.outcome for result in report.results]


async def test_a_batch_moves_the_run_and_stores_its_offsets_in_one_transaction() -> None:
    store = FakeStore()
    report = await commit_batch(batch(RUNNING, SUCCEEDED), store=store, group_id=GROUP)

    assert outcomes(report) == [Outcome.applied, Outcome.applied]
    assert store.commits == 1
    run = store.tables.runs[(Provider.krenalis, "r1")]
    assert run.state is RunState.succeeded
    path = [(t.from_state, t.observation.state) for t, _ in store.tables.transitions]
    assert path == [(None, RunState.running), (RunState.running, RunState.succeeded)]
    sources = [(s.topic, s.partition, s.offset) for _, s in store.tables.transitions if s]
    assert sources == [(TOPIC, 0, 0), (TOPIC, 0, 1)]
    assert store.tables.offsets == {(GROUP, TOPIC, 0): 2}


async def test_a_batch_read_again_after_a_crash_changes_nothing() -> None:
    store = FakeStore()
    await commit_batch(batch(RUNNING, SUCCEEDED), store=store, group_id=GROUP)
    before = (dict(store.tables.runs), list(store.tables.transitions))

    again = await commit_batch(batch(RUNNING, SUCCEEDED), store=store, group_id=GROUP)

    assert outcomes(again) == [Outcome.duplicate, Outcome.duplicate]
    assert (dict(store.tables.runs), list(store.tables.transitions)) == before
    assert store.tables.offsets == {(GROUP, TOPIC, 0): 2}


async def test_an_older_report_after_a_newer_one_is_stale() -> None:
    store = FakeStore()
    await commit_batch(batch(SUCCEEDED), store=store, group_id=GROUP)
    late = await commit_batch(batch(RUNNING, start=1), store=store, group_id=GROUP)

    assert outcomes(late) == [Outcome.stale]
    assert store.tables.runs[(Provider.krenalis, "r1")].state is RunState.succeeded
    assert len(store.tables.transitions) == 1
    assert store.tables.offsets == {(GROUP, TOPIC, 0): 2}


async def test_bad_records_become_dead_letters_and_the_rest_is_applied() -> None:
    store = FakeStore()
    report = await commit_batch(
        batch(b"not json", RUNNING, krenalis("running", id="r3", startTime="yesterday"), None),
        store=store,
        group_id=GROUP,
    )

    assert outcomes(report) == [
        Outcome.dead_letter, Outcome.applied, Outcome.dead_letter, Outcome.dead_letter
    ]  # fmt: skip
    letters = [(d.row.offset, d.row.reason) for d in store.tables.dead_letters]
    assert letters == [(0, "not_json"), (2, "invalid_payload"), (3, "not_json")]
    assert list(store.tables.runs) == [(Provider.krenalis, "r1")]
    assert store.tables.offsets == {(GROUP, TOPIC, 0): 4}


async def test_a_store_outage_commits_nothing_and_is_raised_for_a_retry() -> None:
    store = FakeStore(fail_with=StoreUnavailableError("PostgreSQL unreachable"))
    with pytest.raises(StoreUnavailableError):
        await commit_batch(batch(RUNNING), store=store, group_id=GROUP)
    assert store.commits == 0
    assert store.tables.offsets == {}


async def test_a_failed_run_enqueues_one_trigger_per_receiver_once() -> None:
    store = FakeStore()
    alerting = Alerting(AlertRules(quality_ratio=0.05), receivers=("ops", "am"))
    report = await commit_batch(batch(FAILED), store=store, group_id=GROUP, alerting=alerting)
    await commit_batch(batch(FAILED, start=1), store=store, group_id=GROUP, alerting=alerting)

    key = next(k for k in store.tables.alerts if ":PipelineRunFailed:" in k)
    assert store.tables.outbox == [(key, "ops", "trigger"), (key, "am", "trigger")]
    assert report.outbox_rows == 2
    assert store.tables.alerts[key].firing


async def test_replay_applies_what_today_accepts_and_notes_what_still_fails() -> None:
    store = FakeStore()
    unrouted = Routing(topics={}, cloudevents_type_prefixes=DEFAULT_CLOUDEVENTS_TYPES)
    await commit_batch(batch(RUNNING, b"{", routing=unrouted), store=store, group_id=GROUP)
    assert [d.row.reason for d in store.tables.dead_letters] == ["unknown_provider", "not_json"]

    report = await replay_dead_letters(store, ROUTING, ids=[], reason=None)

    assert (report.applied, report.still_failing) == (1, 1)
    assert store.tables.runs[(Provider.krenalis, "r1")].state is RunState.running
    replayed = [(d.replayed, d.replay_result, d.row.reason) for d in store.tables.dead_letters]
    assert replayed == [(True, "applied", "unknown_provider"), (False, "still_failing", "not_json")]
    again = await replay_dead_letters(store, ROUTING, ids=[], reason=None)
    assert (again.applied, again.still_failing) == (0, 1)
