"""What a poll publishes, decided purely (edge/polling.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipestatus.domain.states import Provider
from pipestatus.edge.polling import (
    Known,
    Polled,
    backoff_s,
    checkpoint,
    live,
    plan,
    polled,
    to_record,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=1)


def load(provider: str, name: str) -> dict[str, Any]:
    document = json.loads((FIXTURES / provider / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def resource(provider: Provider, document: dict[str, Any]) -> Polled:
    found = polled(provider, document)
    assert found is not None
    return found


def test_only_status_relevant_fields_move_the_fingerprint() -> None:
    run = load("krenalis", "running.json")
    same = resource(Provider.krenalis, run | {"unrelated": "new field"})
    moved = resource(Provider.krenalis, run | {"endTime": "2026-07-01T09:30:00Z"})
    base = resource(Provider.krenalis, run)
    assert same.fingerprint == base.fingerprint
    assert moved.fingerprint != base.fingerprint
    assert (base.terminal, moved.terminal) == (False, True)


def test_integer_ids_key_the_run_as_the_worker_does() -> None:
    found = resource(Provider.krenalis, load("krenalis", "succeeded_6_steps_int_ids.json"))
    assert found.run_id == "609461988"


def test_a_by_id_response_is_read_inside_its_envelope_and_published_as_returned() -> None:
    body = (FIXTURES / "nuvo" / "execution_response.json").read_bytes()
    found = polled(Provider.nuvo, json.loads(body), body)
    assert found is not None
    assert found.run_id == json.loads(body)["data"]["id"]
    record = to_record(Provider.nuvo, found, topic="runs.nuvo", type_prefix="com.getnuvo.", at=NOW)
    assert record.value == body
    assert record.key == found.run_id.encode()
    carried = dict(record.headers)
    assert carried["ce_id"] == f"{found.run_id}:{found.fingerprint}".encode()
    assert carried["ce_source"] == b"pipestatus/poll/nuvo"
    assert carried["ce_time"] == b"2026-07-14T12:00:00Z"


def test_a_resource_the_worker_would_reject_is_still_published_by_its_raw_id() -> None:
    found = resource(Provider.nuvo, load("nuvo", "processing.json") | {"status": "PAUSED"})
    assert (found.run_id, found.terminal) == ("6690f1c2a7b4e90012ab34cd", False)
    assert polled(Provider.nuvo, {"status": "PAUSED"}) is None


def test_plan_publishes_new_and_changed_counts_unchanged_expires_old_ended() -> None:
    a = resource(Provider.krenalis, load("krenalis", "running.json"))
    b = resource(Provider.krenalis, load("krenalis", "succeeded_with_warnings.json"))
    known = {
        a.run_id: Known(a.run_id, "old", None),
        b.run_id: Known(b.run_id, b.fingerprint, NOW - timedelta(days=2)),
        "gone-recently": Known("gone-recently", "f", NOW - timedelta(minutes=5)),
        "gone-long-ago": Known("gone-long-ago", "f", NOW - timedelta(days=2)),
        "live": Known("live", "f", None),
    }
    decided = plan([a, b], known, now=NOW, grace=GRACE)
    assert [p.run_id for p in decided.publish] == [a.run_id]
    assert decided.unchanged == 1
    assert decided.expired == ("gone-long-ago",)  # b is old but still returned: kept
    assert sorted(run.run_id for run in live(known, now=NOW, grace=GRACE)) == sorted(
        [a.run_id, "gone-recently", "live"]
    )


def test_checkpoint_keeps_the_first_ended_time_and_reopens_a_rerun() -> None:
    ended = resource(Provider.krenalis, load("krenalis", "succeeded_with_warnings.json"))
    running = resource(Provider.krenalis, load("krenalis", "running.json"))
    first = checkpoint(ended, None, now=NOW)
    assert first.ended_seen_at == NOW
    later = checkpoint(ended, first, now=NOW + timedelta(hours=3))
    assert later.ended_seen_at == NOW
    assert checkpoint(running, first, now=NOW).ended_seen_at is None


def test_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() -> None:
    waits = [backoff_s(n, initial=1, maximum=30, jitter=1.0) for n in range(1, 8)]
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_s(3, initial=1, maximum=30, jitter=0.5) == 2
    assert backoff_s(3, initial=1, maximum=30, jitter=0.0) == 2  # never below half
