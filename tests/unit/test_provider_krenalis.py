"""Krenalis pipeline runs: the derived state table, both step layouts, both id types."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipestatus.domain.observation import Counters, Observation
from pipestatus.domain.states import ErrorCategory, Provider, RunState
from pipestatus.errors import InvalidPayloadError, UnknownPayloadKindError
from pipestatus.providers import parse_document, parse_record
from pipestatus.providers.krenalis import (
    SPEC,
    STATUS_TABLE,
    STEP_LAYOUTS,
    TERMINATION_ERRORS,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "krenalis"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


def observe(document: dict[str, Any]) -> Observation:
    parsed = parse_document(document, Provider.krenalis)
    assert parsed.kind == "krenalis.pipeline_run"
    (observation,) = parsed.observations
    return observation


@pytest.mark.parametrize(
    ("fixture", "state", "category", "retryable"),
    [
        ("running.json", RunState.running, None, None),
        ("running_without_error.json", RunState.running, None, None),
        ("succeeded_6_steps_int_ids.json", RunState.succeeded, None, None),
        ("succeeded_7_steps_consent.json", RunState.succeeded, None, None),
        ("succeeded_with_warnings.json", RunState.succeeded, None, None),
        ("cancelled_organization_disabled.json", RunState.cancelled, None, None),
        ("failed_node_unresponsive.json", RunState.failed, ErrorCategory.infrastructure, True),
        ("failed_internal_error.json", RunState.failed, ErrorCategory.internal, True),
        ("failed_pipeline_error.json", RunState.failed, ErrorCategory.pipeline_error, False),
    ],
)
def test_fixture_maps_to_state(fixture, state, category, retryable):
    observation = observe(load(fixture))

    assert observation.state is state
    assert observation.error_category is category
    assert observation.retryable is retryable
    assert observation.provider is Provider.krenalis
    assert observation.provider_status is None
    assert observation.attempt == 1


@pytest.mark.parametrize("steps", sorted(STEP_LAYOUTS))
@pytest.mark.parametrize("run_id", [609461413, "4kT9wQz2LmPa"])
@pytest.mark.parametrize(
    ("end_time", "error", "key"),
    [
        (None, "", "endTime null"),
        ("2026-07-01T08:03:41Z", "", "ended, error empty"),
        *[("2026-07-01T08:03:41Z", text, key) for text, key in TERMINATION_ERRORS.items()],
        ("2026-07-01T08:03:41Z", "Transformation: invalid JSON", "ended, other error"),
    ],
)
def test_every_derivation_for_both_layouts_and_id_types(steps, run_id, end_time, error, key):
    rule = STATUS_TABLE[key]
    document = {
        "id": run_id,
        "pipeline": 705981339 if isinstance(run_id, int) else "9xRb2TfY7uKc",
        "startTime": "2026-07-01T08:00:00Z",
        "endTime": end_time,
        "passed": [0] * steps,
        "failed": [0] * steps,
        "error": error,
    }

    observation = observe(document)

    assert observation.state is rule.state
    assert observation.run_id == str(run_id)
    assert observation.error_category is (
        rule.error_category if rule.state is RunState.failed else None
    )
    assert observation.error_message == (error or None)


def test_every_table_row_is_reachable():
    reachable = {"endTime null", "ended, error empty", "ended, other error"}
    assert reachable | set(TERMINATION_ERRORS.values()) == set(STATUS_TABLE)
    assert SPEC.status_table is STATUS_TABLE


def test_integer_ids_become_decimal_strings():
    observation = observe(load("succeeded_6_steps_int_ids.json"))

    assert observation.run_id == "609461988"
    assert observation.pipeline_id == "705981207"


def test_six_step_counters_treat_filter_drops_as_filtered_not_failed():
    observation = observe(load("succeeded_6_steps_int_ids.json"))

    assert observation.counters == Counters(
        rows_in=4310, rows_out=4262, rows_failed=0, rows_filtered=48, duration_ms=1_298_804
    )
    assert observation.warnings == ()


def test_seven_step_counters_treat_consent_drops_as_filtered():
    observation = observe(load("succeeded_7_steps_consent.json"))

    assert observation.counters == Counters(
        rows_in=2000, rows_out=1850, rows_failed=0, rows_filtered=150, duration_ms=150_500
    )
    assert observation.warnings == ()


def test_failures_at_error_steps_are_warnings_on_a_succeeded_run():
    observation = observe(load("succeeded_with_warnings.json"))

    assert observation.state is RunState.succeeded
    assert observation.warnings == (
        "5 records failed at InputValidation",
        "2 records failed at OutputValidation",
    )
    assert observation.counters.rows_failed == 7
    assert observation.counters.rows_filtered == 50


def test_running_run_reports_no_counters_and_occurs_at_its_start():
    observation = observe(load("running.json"))

    assert observation.counters == Counters()
    assert observation.occurred_at == datetime(2026, 7, 1, 9, 0, 0, 4000, tzinfo=UTC)
    assert observation.ended_at is None


def test_ended_run_occurs_at_its_end():
    observation = observe(load("failed_internal_error.json"))

    assert observation.occurred_at == datetime(2024, 12, 2, 14, 30, 3, 812000, tzinfo=UTC)
    assert observation.started_at == datetime(2024, 12, 2, 14, 30, tzinfo=UTC)


def test_cancelled_run_keeps_the_reason_but_no_error_category():
    observation = observe(load("cancelled_organization_disabled.json"))

    assert observation.error_message == "organization has been disabled"
    assert observation.error_category is None
    assert observation.retryable is None


def test_shape_alone_identifies_the_kind():
    raw = (FIXTURES / "succeeded_7_steps_consent.json").read_bytes()

    parsed = parse_record(raw)

    assert parsed.provider is Provider.krenalis
    assert parsed.native_event_id is None


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"passed": [1, 2, 3, 4, 5]}, "passed"),
        ({"failed": [0] * 8}, "failed"),
        ({"failed": [0] * 7}, "failed"),
        ({"passed": [1, 1, 1, 1, 1, "1"]}, "passed.5"),
        ({"passed": [1, 1, 1, 1, 1, -1]}, "passed.5"),
        ({"id": ""}, "id"),
        ({"id": "   "}, "id"),
        ({"id": "x" * 257}, "id"),
        ({"pipeline": True}, "pipeline"),
        ({"id": 1.5}, "id"),
        ({"startTime": "yesterday"}, "startTime"),
        ({"endTime": 42.5e30}, "endTime"),
        ({"error": None}, "error"),
    ],
)
def test_rejects_invalid_fields_with_their_path(change, path):
    document = load("succeeded_6_steps_int_ids.json") | change

    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.krenalis)

    assert caught.value.path == path


@pytest.mark.parametrize("field", ["startTime", "endTime"])
def test_rejects_a_missing_required_field(field):
    document = load("running.json")
    del document[field]

    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.krenalis)

    assert caught.value.path == field
    assert "required" in caught.value.detail.lower()


@pytest.mark.parametrize("field", ["id", "pipeline", "passed", "failed"])
def test_without_an_identifying_key_the_shape_is_unknown(field):
    document = load("running.json")
    del document[field]

    with pytest.raises(UnknownPayloadKindError):
        parse_document(document, Provider.krenalis)


def test_receive_failures_are_record_errors_too():
    document = load("succeeded_6_steps_int_ids.json") | {
        "passed": [4300, 4300, 4252, 4252, 4252, 4252],
        "failed": [10, 0, 48, 0, 0, 0],
    }

    observation = observe(document)

    assert observation.warnings == ("10 records failed at Receive",)
    assert observation.counters.rows_in == 4310
    assert observation.counters.rows_failed == 10


def test_the_list_response_reports_each_run_as_if_alone():
    """Issue 14: ``{"runs": [...]}`` fans out (tests/unit/test_provider_lists.py has the table)."""
    parsed = parse_document({"runs": [load("running.json")]}, Provider.krenalis)

    assert parsed.kind == "krenalis.pipeline_runs"
    (observation,) = parsed.observations
    assert (observation.run_id, observation.attempt, observation.state) == (
        "7Hq3ZpV1sRtN",
        1,
        RunState.running,
    )


def test_unknown_extra_fields_are_accepted():
    document = load("running.json") | {"incremental": True, "health": "Healthy"}

    assert observe(document).state is RunState.running
