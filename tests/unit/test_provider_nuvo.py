"""nuvo executions: statuses, error types, attempts from logs, the three payload shapes."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipestatus.domain.observation import Counters, Observation
from pipestatus.domain.states import ErrorCategory, Provider, RunState
from pipestatus.errors import InvalidPayloadError, UnknownPayloadKindError, UnmappedStatusError
from pipestatus.providers import parse_document, parse_record
from pipestatus.providers.nuvo import ERROR_TYPE_TABLE, SPEC, STATUS_TABLE

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nuvo"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


def observe(document: dict[str, Any]) -> Observation:
    (observation,) = parse_document(document, Provider.nuvo).observations
    return observation


def test_tables_cover_exactly_the_documented_values():
    assert set(STATUS_TABLE) == {"PROCESSING", "SUCCESSFUL", "FAILED"}
    assert len(ERROR_TYPE_TABLE) == 7
    assert SPEC.status_table is STATUS_TABLE


@pytest.mark.parametrize(
    ("fixture", "status", "state"),
    [
        ("processing.json", "PROCESSING", RunState.running),
        ("successful.json", "SUCCESSFUL", RunState.succeeded),
        ("failed.json", "FAILED", RunState.failed),
    ],
)
def test_every_status(fixture, status, state):
    observation = observe(load(fixture))

    assert observation.state is state
    assert observation.provider_status == status
    assert observation.provider is Provider.nuvo


@pytest.mark.parametrize(
    ("error_type", "category", "retryable"),
    [
        ("SOURCE_UNRESPONSIVE", ErrorCategory.source_unavailable, True),
        ("SOURCE_DATA_EMPTY", ErrorCategory.source_empty, False),
        ("PARSING_FAILURE", ErrorCategory.parse, False),
        ("DESTINATION_UNRESPONSIVE", ErrorCategory.destination_unavailable, True),
        ("DESTINATION_SIZE_LIMIT", ErrorCategory.destination_limit, False),
        ("WRITE_FILE_FAILURE", ErrorCategory.write_failed, False),
        ("ERROR_THRESHOLD_EXCEEDED", ErrorCategory.quality_threshold, False),
    ],
)
def test_every_error_type_of_a_failed_execution(error_type, category, retryable):
    document = load("failed.json")
    document["error"]["type"] = error_type

    observation = observe(document)

    assert observation.state is RunState.failed
    assert observation.error_category is category
    assert observation.retryable is retryable
    assert observation.error_message == "14.2% of cells contain errors; the pipeline allows 10%."


def test_failed_without_an_error_object_has_an_unknown_cause():
    document = load("failed.json")
    del document["error"]

    observation = observe(document)

    assert observation.error_category is ErrorCategory.unknown
    assert observation.retryable is False


def test_an_error_object_on_a_successful_execution_is_ignored():
    # The seed's read-all example shows one; only a FAILED execution has a cause.
    document = load("successful.json") | {"error": {"type": "NEW_KIND", "message": "n/a"}}

    observation = observe(document)

    assert observation.state is RunState.succeeded
    assert observation.error_category is None
    assert observation.error_message is None


def test_successful_execution_counters_come_from_the_last_log():
    observation = observe(load("successful.json"))

    assert observation.warnings == ()
    assert observation.counters == Counters(
        rows_out=500, rows_failed=0, quality_valid=6000, quality_invalid=0, duration_ms=5120
    )
    assert observation.occurred_at == datetime(2026, 7, 14, 7, 0, 7, 260000, tzinfo=UTC)
    assert observation.started_at == datetime(2026, 7, 14, 7, 0, 1, 902000, tzinfo=UTC)


def test_error_cells_make_a_successful_execution_carry_warnings():
    observation = observe(load("successful_with_error_cells.json"))

    assert observation.state is RunState.succeeded
    assert observation.warnings == ("312 of 6000 output cells have errors",)
    assert observation.counters.quality_invalid == 312
    assert observation.counters.quality_valid == 5688
    assert observation.counters.rows_failed == 41


def test_attempt_counts_logs_and_counters_follow_the_fix():
    observation = observe(load("fixed_after_failure.json"))

    assert observation.attempt == 2
    assert observation.state is RunState.succeeded
    assert observation.warnings == ()
    assert observation.counters.duration_ms == 6230
    assert observation.counters.quality_invalid == 0


@pytest.mark.parametrize(
    ("logs", "attempt"),
    [(None, 1), ([], 1), ([{"type": "CREATE"}], 1), ([{"type": "CREATED"}, {"type": "FIX"}], 2)],
)
def test_attempt_is_the_number_of_logs_at_least_one(logs, attempt):
    document = load("processing.json")
    if logs is not None:
        document["logs"] = logs

    assert observe(document).attempt == attempt


def test_started_on_is_accepted_for_started_at():
    document = load("processing.json")
    del document["created_at"], document["updated_at"]
    document["logs"] = [{"type": "CREATE", "started_on": "2026-07-14T06:00:02Z"}]

    observation = observe(document)

    assert observation.occurred_at == datetime(2026, 7, 14, 6, 0, 2, tzinfo=UTC)


def test_occurred_at_falls_back_to_created_at():
    document = load("processing.json")
    del document["updated_at"]

    assert observe(document).occurred_at == datetime(2026, 7, 14, 6, 0, 1, 874000, tzinfo=UTC)


def test_wrapped_execution_response():
    parsed = parse_document(load("execution_response.json"), Provider.nuvo)
    (observation,) = parsed.observations

    assert parsed.kind == "nuvo.execution_response"
    assert observation.run_id == "66d6d5b4c1e2f30012cd7788"
    assert observation.pipeline_id == "66d6d2a0c1e2f30012cd7000"
    assert observation.error_category is ErrorCategory.source_unavailable
    assert observation.retryable is True
    assert observation.attempt == 1
    assert observation.occurred_at == datetime(2024, 9, 3, 9, 35, 22, 530000, tzinfo=UTC)


def test_bare_and_wrapped_forms_give_the_same_observation():
    wrapped = load("execution_response.json")

    bare = observe(wrapped["data"])
    from_wrapped = observe(wrapped)

    assert bare.kind == "nuvo.execution"
    assert from_wrapped.kind == "nuvo.execution_response"
    assert dataclasses.replace(from_wrapped, kind=bare.kind) == bare


def test_create_response_fans_out():
    parsed = parse_document(load("create_response.json"), Provider.nuvo)

    assert parsed.kind == "nuvo.create_response"
    assert [(o.run_id, o.state, o.attempt) for o in parsed.observations] == [
        ("66e01f00c1e2f30012cd9001", RunState.running, 1),
        ("66e01f00c1e2f30012cd9002", RunState.running, 1),
    ]
    assert {o.pipeline_id for o in parsed.observations} == {"66d6d2a0c1e2f30012cd7000"}
    assert {o.occurred_at for o in parsed.observations} == {None}


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("processing.json", "nuvo.execution"),
        ("execution_response.json", "nuvo.execution_response"),
        ("create_response.json", "nuvo.create_response"),
    ],
)
def test_shape_alone_identifies_the_kind(fixture, kind):
    parsed = parse_record((FIXTURES / fixture).read_bytes())

    assert (parsed.provider, parsed.kind) == (Provider.nuvo, kind)


def test_unknown_trigger_and_log_types_are_accepted():
    document = load("successful.json") | {"trigger_type": "EVENT_BASE"}
    document["logs"][0]["type"] = "RETRY"

    assert observe(document).state is RunState.succeeded


def test_unknown_status_is_unmapped():
    with pytest.raises(UnmappedStatusError) as caught:
        parse_document(load("processing.json") | {"status": "QUEUED"}, Provider.nuvo)

    assert caught.value.path == "status"


def test_unknown_error_type_of_a_failed_execution_is_unmapped():
    document = load("execution_response.json")
    document["data"]["error"]["type"] = "SOURCE_TIMEOUT"

    with pytest.raises(UnmappedStatusError) as caught:
        parse_document(document, Provider.nuvo)

    assert caught.value.path == "data.error.type"


def test_unknown_status_in_a_fanned_out_entry_is_unmapped():
    document = load("create_response.json")
    document["data"][1]["status"] = "PENDING"

    with pytest.raises(UnmappedStatusError) as caught:
        parse_document(document, Provider.nuvo)

    assert caught.value.path == "data.1.status"


@pytest.mark.parametrize(
    ("fixture", "change", "path"),
    [
        ("processing.json", {"id": ""}, "id"),
        ("processing.json", {"pipeline": "p" * 257}, "pipeline"),
        ("processing.json", {"id": 66}, "id"),
        ("processing.json", {"status": None}, "status"),
        ("processing.json", {"created_at": "07/14/2026"}, "created_at"),
        ("processing.json", {"logs": {"type": "CREATE"}}, "logs"),
        ("processing.json", {"logs": [{"duration": "fast"}]}, "logs.0.duration"),
        ("processing.json", {"logs": [{"data": {"total_rows": -1}}]}, "logs.0.data.total_rows"),
        ("failed.json", {"error": {"message": "no type"}}, "error.type"),
        ("processing.json", {"created_by": "someone"}, "created_by"),
    ],
)
def test_rejects_invalid_fields_with_their_path(fixture, change, path):
    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(load(fixture) | change, Provider.nuvo)

    assert caught.value.path == path


def test_wrapped_execution_reports_paths_inside_data():
    document = load("execution_response.json")
    del document["data"]["pipeline"]

    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.nuvo)

    assert caught.value.path == "data.pipeline"


def test_create_response_entries_require_a_trigger_type():
    document = load("create_response.json")
    del document["data"][0]["trigger_type"]

    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.nuvo)

    assert caught.value.path == "data.0.trigger_type"


def test_read_all_page_reports_its_execution_as_if_alone():
    """Issue 14: the read-all page fans out (tests/unit/test_provider_lists.py has the table)."""
    document = {
        "data": [load("successful.json")],
        "pagination": {"total": 1, "offset": 0, "limit": 10},
    }

    parsed = parse_document(document, Provider.nuvo)

    assert parsed.kind == "nuvo.read_all_response"
    (observation,) = parsed.observations
    (alone,) = parse_document(load("successful.json"), Provider.nuvo).observations
    assert (observation.run_id, observation.attempt, observation.state) == (
        alone.run_id,
        alone.attempt,
        alone.state,
    )


def test_a_document_without_an_execution_shape_is_unknown():
    with pytest.raises(UnknownPayloadKindError):
        parse_document({"pipeline_id": "6690e8d0a7b4e90012ab1200"}, Provider.nuvo)
