"""Zoho DataPrep Job Summary: validation and mapping onto the common run model (DESIGN §4)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipestatus.domain.states import ErrorCategory, Provider, RunState
from pipestatus.errors import (
    InvalidPayloadError,
    ProviderApiError,
    UnknownPayloadKindError,
    UnmappedStatusError,
)
from pipestatus.providers import PROVIDERS, Parsed, parse_document, parse_record
from pipestatus.providers.zoho_dataprep import KIND_JOB_SUMMARY, SPEC, STATUS_TABLE
from pipestatus.providers.zoho_models import JobSummaryResponse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zoho_dataprep"
T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return document


def parse_fixture(name: str) -> Parsed:
    return parse_record((FIXTURES / f"{name}.json").read_bytes(), Provider.zoho_dataprep)


def minimal(execution_status: Any = 1, **run: Any) -> dict[str, Any]:
    """The smallest valid Job Summary: run id, status and pipeline id."""
    return {
        "pipelinerun": {
            "id": "2650000009990001",
            "execution_status": execution_status,
            "pipeline": {"id": "2650000009990002"},
            **run,
        },
        "response_status": {"status": "success", "status_code": 2000, "messages": []},
    }


def stage(stage_type: int, execution_status: int, **fields: Any) -> dict[str, Any]:
    return {"pipelinetask": {"type": stage_type}, "execution_status": execution_status, **fields}


@dataclass(frozen=True)
class Expected:
    state: RunState
    provider_status: str
    occurred_at: datetime
    attempt: int = 1
    error_category: ErrorCategory | None = None
    retryable: bool | None = None
    warnings: tuple[str, ...] = ()
    phase: str | None = None
    phase_rank: int = 0
    error_message: str | None = None


def at(seconds: float) -> datetime:
    """A moment ``seconds`` after the fixtures' base time (2026-01-01T10:00:00Z)."""
    return T0 + timedelta(seconds=seconds)


EXPECTED: dict[str, Expected] = {
    "created": Expected(RunState.queued, "2", at(0)),
    "running_at_extract": Expected(RunState.running, "0", at(1.5), phase="extract", phase_rank=1),
    "running_at_transform": Expected(
        RunState.running, "0", at(45), phase="transform", phase_rank=3
    ),
    "succeeded": Expected(RunState.succeeded, "1", at(84)),
    "succeeded_with_invalid_values": Expected(
        RunState.succeeded,
        "1",
        at(106),
        warnings=("export_quality_invalid: 18 invalid values",),
    ),
    "failed_at_extract": Expected(
        RunState.failed,
        "-1",
        at(21),
        error_category=ErrorCategory.source,
        retryable=False,
        error_message="Connection refused by crm-postgres:5432",
    ),
    "failed_at_raw_parse": Expected(
        RunState.failed,
        "-1",
        at(42),
        error_category=ErrorCategory.parse,
        retryable=False,
        error_message="Unable to parse row 1041: unterminated quoted field",
    ),
    "failed_at_transform": Expected(
        RunState.failed,
        "-1",
        at(63),
        error_category=ErrorCategory.transform,
        retryable=False,
        error_message="Rule 7 (Split column 'full_name'): column not found",
    ),
    "failed_at_transform_then_load": Expected(
        RunState.failed,
        "-1",
        at(84),
        error_category=ErrorCategory.transform,
        retryable=False,
        error_message="Rule 3 (Change data type 'amount'): 14 values invalid",
    ),
    "failed_at_load": Expected(
        RunState.failed,
        "-1",
        at(84),
        error_category=ErrorCategory.destination,
        retryable=False,
        error_message="Box API returned 403: insufficient folder permissions",
    ),
    "failed_at_stages_extract": Expected(
        RunState.failed,
        "-1",
        at(84),
        error_category=ErrorCategory.unknown,
        retryable=False,
        error_message="Stage extraction aborted",
    ),
    "failed_without_failed_stage": Expected(
        RunState.failed, "-1", at(44), error_category=ErrorCategory.unknown, retryable=False
    ),
    "compact_failed_at_load": Expected(
        RunState.failed,
        "-1",
        at(125),
        error_category=ErrorCategory.destination,
        retryable=False,
    ),
    "stopped": Expected(RunState.cancelled, "-2", at(61)),
    "system_killed": Expected(
        RunState.failed, "-3", at(300), error_category=ErrorCategory.killed, retryable=True
    ),
    "rerun_succeeded": Expected(RunState.succeeded, "1", at(3684), attempt=3),
    "rerun_running_re_run_count": Expected(
        RunState.running, "0", at(7230), attempt=2, phase="raw_parse", phase_rank=2
    ),
}
NOT_RUNS = {"api_error"}


def test_every_fixture_has_an_expectation() -> None:
    names = {path.stem for path in FIXTURES.glob("*.json")}
    assert names == set(EXPECTED) | NOT_RUNS


def test_fixtures_cover_every_documented_status() -> None:
    assert {expected.provider_status for expected in EXPECTED.values()} == set(STATUS_TABLE)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_maps_onto_the_common_model(name: str) -> None:
    expected = EXPECTED[name]
    parsed = parse_fixture(name)
    assert parsed.provider is Provider.zoho_dataprep
    assert parsed.kind == KIND_JOB_SUMMARY
    (observation,) = parsed.observations
    document = fixture(name)
    assert observation.run_id == document["pipelinerun"]["id"]
    assert observation.state is expected.state
    assert observation.provider_status == expected.provider_status
    assert observation.error_category == expected.error_category
    assert observation.retryable == expected.retryable
    assert observation.attempt == expected.attempt
    assert observation.warnings == expected.warnings
    assert observation.phase == expected.phase
    assert observation.phase_rank == expected.phase_rank
    assert observation.error_message == expected.error_message
    assert observation.occurred_at == expected.occurred_at
    assert observation.occurred_at is not None
    assert observation.occurred_at.utcoffset() == timedelta(0)
    assert observation.kind == KIND_JOB_SUMMARY


@pytest.mark.parametrize(
    ("status", "state", "category", "retryable"),
    [
        (2, RunState.queued, None, None),
        (0, RunState.running, None, None),
        (1, RunState.succeeded, None, None),
        (-1, RunState.failed, ErrorCategory.unknown, False),
        (-2, RunState.cancelled, None, None),
        (-3, RunState.failed, ErrorCategory.killed, True),
    ],
)
def test_status_table(
    status: int, state: RunState, category: ErrorCategory | None, retryable: bool | None
) -> None:
    (observation,) = parse_document(minimal(status), Provider.zoho_dataprep).observations
    assert observation.state is state
    assert observation.provider_status == str(status)
    assert observation.error_category == category
    assert observation.retryable == retryable
    assert STATUS_TABLE[str(status)].note


@pytest.mark.parametrize(
    ("stage_type", "category"),
    [
        (5, ErrorCategory.source),
        (7, ErrorCategory.parse),
        (10, ErrorCategory.transform),
        (15, ErrorCategory.unknown),
        (20, ErrorCategory.destination),
        (99, ErrorCategory.unknown),
    ],
)
def test_failure_category_comes_from_the_failed_stage(
    stage_type: int, category: ErrorCategory
) -> None:
    document = minimal(-1, pipelinetaskinstances=[stage(5, 1), stage(stage_type, -1)])
    if stage_type == 5:
        document["pipelinerun"]["pipelinetaskinstances"] = [stage(5, -1)]
    (observation,) = parse_document(document).observations
    assert observation.error_category is category
    assert observation.retryable is False


def test_the_first_failed_stage_in_pipeline_order_wins_whatever_the_list_order() -> None:
    tasks = [stage(20, -1, message="load"), stage(7, -1, message="parse"), stage(5, 1)]
    (observation,) = parse_document(minimal(-1, pipelinetaskinstances=tasks)).observations
    assert observation.error_category is ErrorCategory.parse
    assert observation.error_message == "parse"


def test_system_killed_keeps_its_own_category_even_with_a_failed_stage() -> None:
    document = minimal(-3, pipelinetaskinstances=[stage(10, -1, message="killed mid-way")])
    (observation,) = parse_document(document).observations
    assert observation.error_category is ErrorCategory.killed
    assert observation.retryable is True
    assert observation.error_message == "killed mid-way"


@pytest.mark.parametrize(
    ("tasks", "phase", "rank"),
    [
        ([], None, 0),
        ([stage(5, 0)], "extract", 1),
        ([stage(5, 1), stage(7, 0)], "raw_parse", 2),
        ([stage(5, 1), stage(7, 1), stage(10, 0)], "transform", 3),
        ([stage(10, 1), stage(15, 0)], "stages_extract", 4),
        ([stage(20, 0), stage(5, 1), stage(10, 1)], "load", 5),
        ([stage(99, 0)], None, 0),
    ],
)
def test_running_phase_is_the_furthest_started_stage(
    tasks: list[dict[str, Any]], phase: str | None, rank: int
) -> None:
    (observation,) = parse_document(minimal(0, pipelinetaskinstances=tasks)).observations
    assert (observation.phase, observation.phase_rank) == (phase, rank)


@pytest.mark.parametrize("status", [2, 1, -1, -2, -3])
def test_only_running_runs_carry_a_phase(status: int) -> None:
    tasks = [stage(5, 1), stage(10, 0)]
    (observation,) = parse_document(minimal(status, pipelinetaskinstances=tasks)).observations
    assert (observation.phase, observation.phase_rank) == (None, 0)


def test_counters_of_a_successful_run() -> None:
    (observation,) = parse_fixture("succeeded_with_invalid_values").observations
    assert observation.counters.as_dict() == {
        "rows_out": 1208,
        "quality_valid": 2386,
        "quality_invalid": 18,
        "quality_missing": 4,
        "bytes": 964266,
        "duration_ms": 106_000,
    }
    assert observation.started_at == T0
    assert observation.ended_at == at(106)


def test_rows_out_falls_back_to_the_run_total_without_export_metrics() -> None:
    document = minimal(1, row_count=42, storage_used="1024")
    (observation,) = parse_document(document).observations
    assert observation.counters.rows_out == 42
    assert observation.counters.bytes == 1024


def test_a_single_invalid_value_is_singular() -> None:
    metric = {"datasetexportauditmetric": {"quality": '{"valid":9,"invalid":1,"missing":0}'}}
    document = minimal(1, pipelinetaskinstances=[stage(20, 1, datasetexportaudit=metric)])
    (observation,) = parse_document(document).observations
    assert observation.warnings == ("export_quality_invalid: 1 invalid value",)


@pytest.mark.parametrize("name", ["stopped", "system_killed"])
def test_kill_or_stop_ends_at_modified_time_without_completion_time(name: str) -> None:
    (observation,) = parse_fixture(name).observations
    modified = fixture(name)["pipelinerun"]["modified_time"]
    assert observation.ended_at == datetime.fromtimestamp(modified / 1000, UTC)
    assert observation.started_at == T0


def test_non_terminal_runs_have_no_end() -> None:
    (observation,) = parse_fixture("running_at_transform").observations
    assert observation.ended_at is None


@pytest.mark.parametrize(
    ("places", "expected"),
    [
        ({"pipeline": {"id": "A"}, "pipelineaudit": {"pipeline": {"id": "B"}}}, "A"),
        ({"pipelineaudit": {"pipeline": {"id": "B"}}, "pipelinerunaudit": {}}, "B"),
        ({"pipelinerunconfigaudit": {"pipeline": {"id": "C"}}}, "C"),
        ({"pipelinerunaudit": {"pipeline": {"id": 4711}}}, "4711"),
    ],
)
def test_pipeline_id_is_found_on_the_run_or_its_audits(
    places: dict[str, Any], expected: str
) -> None:
    document = minimal(2)
    del document["pipelinerun"]["pipeline"]
    document["pipelinerun"].update(places)
    (observation,) = parse_document(document).observations
    assert observation.pipeline_id == expected


def test_integer_run_ids_become_strings_and_extra_fields_are_kept() -> None:
    document = minimal(1, brand_new_field={"x": 1})
    document["pipelinerun"]["id"] = 2650000009990001
    document["undocumented_top_level"] = True
    (observation,) = parse_document(document).observations
    assert observation.run_id == "2650000009990001"


def test_rerun_count_under_either_key() -> None:
    for key in ("rerun_count", "re_run_count"):
        (observation,) = parse_document(minimal(1, **{key: 4})).observations
        assert observation.attempt == 5


def test_every_json_in_string_field_is_decoded() -> None:
    model = JobSummaryResponse.model_validate(fixture("succeeded"))
    load = model.pipelinerun.pipelinetaskinstances[3]
    export = load.datasetexportaudit
    assert export is not None
    assert export.info is not None
    assert export.info.current_retry == 0
    metric = export.datasetexportauditmetric
    assert metric is not None
    assert metric.quality is not None
    assert (metric.quality.valid, metric.quality.invalid, metric.quality.missing) == (57, 0, 151)
    assert export.datasetexport is not None
    assert export.datasetexport.datasink is not None
    connection = export.datasetexport.datasink.connection
    assert connection is not None
    assert connection.connection_json is not None
    assert connection.connection_json.servicename == "box"
    assert load.client_meta is not None
    assert load.client_meta.top == 235
    extract = model.pipelinerun.pipelinetaskinstances[0]
    assert extract.datasourceaudit is not None
    assert extract.datasourceaudit.streams_info is not None
    (stream,) = extract.datasourceaudit.streams_info.values()
    assert stream.execution_status == "SUCCESS"


# --- rejections -------------------------------------------------------------------------------


def test_an_undocumented_execution_status_is_unmapped_not_invalid() -> None:
    with pytest.raises(UnmappedStatusError) as caught:
        parse_document(minimal(7), Provider.zoho_dataprep)
    assert caught.value.reason == "unmapped_status"
    assert caught.value.path == "pipelinerun.execution_status"
    assert "'7'" in caught.value.detail


def set_at(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
    target: Any = changed
    for part in parents:
        target = target[part]
    target[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "reported"),
    [
        ("pipelinerun.execution_status", "running", "pipelinerun.execution_status"),
        ("pipelinerun.execution_status", None, "pipelinerun.execution_status"),
        ("pipelinerun.created_time", "yesterday", "pipelinerun.created_time"),
        ("pipelinerun.completion_time", 99_999_999_999_999, "pipelinerun.completion_time"),
        ("pipelinerun.created_time", -5_000, "pipelinerun.created_time"),
        ("pipelinerun.storage_used", -5, "pipelinerun.storage_used"),
        ("pipelinerun.row_count", "many", "pipelinerun.row_count"),
        ("pipelinerun.rerun_count", -1, "pipelinerun.rerun_count"),
        ("pipelinerun.id", "", "pipelinerun.id"),
        ("pipelinerun.id", ["1"], "pipelinerun.id"),
        ("pipelinerun.pipelinetaskinstances", {"0": {}}, "pipelinerun.pipelinetaskinstances"),
        (
            "pipelinerun.pipelinetaskinstances.3.row_count",
            "three",
            "pipelinerun.pipelinetaskinstances.3.row_count",
        ),
        (
            "pipelinerun.pipelinetaskinstances.0.pipelinetask.type",
            "extract",
            "pipelinerun.pipelinetaskinstances.0.pipelinetask.type",
        ),
        ("pipelinerun.created_by.profile", "admin", "pipelinerun.created_by.profile"),
        ("response_status.status_code", "ok", "response_status.status_code"),
    ],
)
def test_wrong_types_are_invalid_with_their_field_path(
    path: str, value: Any, reported: str
) -> None:
    document = set_at(fixture("succeeded"), path, value)
    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.zoho_dataprep)
    assert caught.value.reason == "invalid_payload"
    assert caught.value.path.startswith(reported)


@pytest.mark.parametrize("field", ["id", "execution_status"])
def test_missing_required_run_fields_are_invalid(field: str) -> None:
    document = fixture("succeeded")
    del document["pipelinerun"][field]
    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.zoho_dataprep)
    assert caught.value.path == f"pipelinerun.{field}"
    assert "required" in caught.value.detail.lower()


def test_a_run_without_any_pipeline_id_is_invalid() -> None:
    document = minimal(1)
    del document["pipelinerun"]["pipeline"]
    document["pipelinerun"]["pipelineaudit"] = {"id": "1", "pipeline": {}}
    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document)
    assert caught.value.path == "pipelinerun"
    assert "no pipeline id" in caught.value.detail
    assert "pipelinerunaudit.pipeline.id" in caught.value.detail


def test_a_success_report_without_its_run_is_no_job_summary() -> None:
    document = minimal(1)
    del document["pipelinerun"]
    with pytest.raises(UnknownPayloadKindError):
        parse_document(document, Provider.zoho_dataprep)
    document["pipelinerun"] = None
    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.zoho_dataprep)
    assert caught.value.path == "pipelinerun"


LOAD = "pipelinerun.pipelinetaskinstances.3"
EXPORT = f"{LOAD}.datasetexportaudit"


@pytest.mark.parametrize(
    ("path", "value", "reported"),
    [
        (f"{EXPORT}.datasetexportauditmetric.quality", '{"valid":57,', "quality"),
        (f"{EXPORT}.datasetexportauditmetric.quality", '{"valid":57}', "quality.invalid"),
        (f"{EXPORT}.datasetexportauditmetric.quality", "[1, 2, 3]", "quality"),
        (
            f"{EXPORT}.datasetexportauditmetric.quality",
            '{"valid":57,"invalid":-1,"missing":0}',
            "quality.invalid",
        ),
        (f"{EXPORT}.info", "{currentRetry: 0}", "info"),
        (f"{LOAD}.client_meta", '{"top": "high"}', "client_meta.top"),
        (
            f"{EXPORT}.datasetexport.datasink.connection.connection_json",
            "not json",
            "connection_json",
        ),
        ("pipelinerun.pipelinetaskinstances.0.datasourceaudit.streams_info", "{", "streams_info"),
    ],
)
def test_broken_json_in_string_fields_are_invalid_with_their_path(
    path: str, value: str, reported: str
) -> None:
    document = set_at(fixture("succeeded"), path, value)
    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.zoho_dataprep)
    assert reported in caught.value.path
    assert caught.value.path.startswith("pipelinerun.pipelinetaskinstances.")


def test_an_api_error_report_is_not_a_run() -> None:
    with pytest.raises(ProviderApiError) as caught:
        parse_fixture("api_error")
    assert caught.value.reason == "provider_api_error"
    assert caught.value.path == "response_status"
    assert "4004" in caught.value.detail
    assert "Job 2650000001239999 not found in pipeline" in caught.value.detail


@pytest.mark.parametrize(
    "response_status",
    [
        {"status": "failure", "status_code": 2000},
        {"status": "success", "status_code": 4001},
        {"status": "Failure", "status_code": "4100", "messages": [{"type": "error"}]},
        {"status": "failure"},
    ],
)
def test_api_errors_are_detected_before_the_run_is_required(
    response_status: dict[str, Any],
) -> None:
    broken_run = {"pipelinerun": {"id": None}, "response_status": response_status}
    with pytest.raises(ProviderApiError):
        parse_document(broken_run)
    with pytest.raises(ProviderApiError):
        parse_document({"response_status": response_status}, Provider.zoho_dataprep)


def test_the_payload_kind_is_found_from_the_shape_alone() -> None:
    parsed = parse_record((FIXTURES / "succeeded.json").read_bytes())
    assert parsed.provider is Provider.zoho_dataprep
    assert parsed.native_event_id is None
    with pytest.raises(UnknownPayloadKindError):
        parse_document({"pipelinerun": fixture("succeeded")["pipelinerun"]}, Provider.zoho_dataprep)


def test_the_provider_is_registered_and_its_schema_documents_the_status_enum() -> None:
    assert PROVIDERS[Provider.zoho_dataprep] is SPEC
    (kind,) = SPEC.kinds
    schema = kind.model.model_json_schema()
    run = schema["$defs"]["PipelineRun"]
    assert run["required"] == ["id", "execution_status"]
    assert run["properties"]["execution_status"]["enum"] == [2, 0, 1, -1, -2, -3]
    metric = schema["$defs"]["ExportMetric"]["properties"]["quality"]
    assert "application/json" in json.dumps(metric)
