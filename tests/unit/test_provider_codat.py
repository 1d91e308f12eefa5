"""Codat: all 21 pull-operation statuses, the read.completed fan-out, the legacy webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipestatus.domain.observation import Observation
from pipestatus.domain.states import ErrorCategory, Provider, RunState
from pipestatus.errors import InvalidPayloadError, UnknownPayloadKindError, UnmappedStatusError
from pipestatus.providers import parse_document, parse_record
from pipestatus.providers.codat import SPEC, STATUS_TABLE
from pipestatus.providers.codat_models import PULL_OPERATION_STATUSES

FIXTURES = Path(__file__).parents[1] / "fixtures" / "codat"

COMPANY = "0d3e9a51-7b2c-4f80-a6d4-91c2b7e3f005"
CONNECTION = "a7c4e210-3f9b-4d1e-8b52-6e0f9d2c4b18"

#: status → (state, error category, retryable, phase, phase rank), straight from DESIGN §4.
EXPECTED: dict[str, tuple[RunState, ErrorCategory | None, bool | None, str | None, int]] = {
    "Initial": (RunState.queued, None, None, "Initial", 0),
    "Queued": (RunState.queued, None, None, "Queued", 1),
    "Fetching": (RunState.running, None, None, "Fetching", 1),
    "MapQueued": (RunState.running, None, None, "MapQueued", 2),
    "Mapping": (RunState.running, None, None, "Mapping", 3),
    "ValidationQueued": (RunState.running, None, None, "ValidationQueued", 4),
    "Validating": (RunState.running, None, None, "Validating", 5),
    "ProcessingQueued": (RunState.running, None, None, "ProcessingQueued", 6),
    "Processing": (RunState.running, None, None, "Processing", 7),
    "Complete": (RunState.succeeded, None, None, None, 0),
    "NotSupported": (RunState.skipped, None, None, None, 0),
    "Cancelled": (RunState.cancelled, None, None, None, 0),
    "FetchError": (RunState.failed, ErrorCategory.source, True, None, 0),
    "MapError": (RunState.failed, ErrorCategory.mapping, False, None, 0),
    "ProcessingError": (RunState.failed, ErrorCategory.processing, False, None, 0),
    "ValidationError": (RunState.failed, ErrorCategory.validation, False, None, 0),
    "InternalError": (RunState.failed, ErrorCategory.internal, True, None, 0),
    "AuthError": (RunState.failed, ErrorCategory.auth, False, None, 0),
    "PermissionsError": (RunState.failed, ErrorCategory.permission, False, None, 0),
    "RateLimitError": (RunState.failed, ErrorCategory.rate_limited, True, None, 0),
    "PrerequisiteNotMet": (RunState.failed, ErrorCategory.prerequisite, False, None, 0),
}


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


def parse(document: dict[str, Any]) -> tuple[str, tuple[Observation, ...], str | None]:
    parsed = parse_document(document, Provider.codat)
    return parsed.kind, parsed.observations, parsed.native_event_id


def test_the_table_covers_exactly_the_documented_enum():
    assert len(PULL_OPERATION_STATUSES) == 21
    assert set(STATUS_TABLE) == set(PULL_OPERATION_STATUSES) == set(EXPECTED)
    assert SPEC.status_table is STATUS_TABLE


@pytest.mark.parametrize("status", PULL_OPERATION_STATUSES)
def test_pull_operation_every_status(status):
    state, category, retryable, phase, rank = EXPECTED[status]
    document = load("pull_operation.json") | {"status": status}

    kind, (observation,), native_id = parse(document)

    assert kind == "codat.pull_operation"
    assert native_id is None
    assert (observation.state, observation.error_category, observation.retryable) == (
        state,
        category,
        retryable,
    )
    assert (observation.phase, observation.phase_rank) == (phase, rank)
    assert observation.provider_status == status


def test_running_phases_rank_in_documented_order():
    order = [
        "Fetching",
        "MapQueued",
        "Mapping",
        "ValidationQueued",
        "Validating",
        "ProcessingQueued",
        "Processing",
    ]
    assert [STATUS_TABLE[status].phase_rank for status in order] == list(range(1, 8))


def test_pull_operation_fields():
    _, (observation,), _ = parse(load("pull_operation.json"))

    assert observation.run_id == "c0a9e3d7-4b1f-4c62-9e85-2f7d6a1b3c90"
    assert observation.pipeline_id == f"{COMPANY}/{CONNECTION}/invoices"
    assert observation.attempt == 1
    assert observation.occurred_at == datetime(2026, 7, 14, 9, 31, 3, 510221, tzinfo=UTC)
    assert observation.started_at == datetime(2026, 7, 14, 9, 30, 41, 279835, tzinfo=UTC)
    assert observation.counters.duration_ms == 22_230


def test_pull_operation_without_completion_occurs_when_requested():
    _, (observation,), _ = parse(load("pull_operation_initial.json"))

    assert observation.state is RunState.queued
    assert observation.occurred_at == datetime(2026, 7, 14, 11, 18, 37, 279835, tzinfo=UTC)
    assert observation.counters.duration_ms is None


def test_pull_operation_error_message_is_kept():
    document = load("pull_operation.json") | {
        "status": "FetchError",
        "errorMessage": "Xero returned 503 Service Unavailable",
        "isCompleted": False,
        "isErrored": True,
    }

    _, (observation,), _ = parse(document)

    assert observation.error_message == "Xero returned 503 Service Unavailable"
    assert observation.retryable is True


def test_read_completed_fans_out_one_observation_per_data_type():
    kind, observations, native_id = parse(load("read_completed.json"))
    event_id = "5b1f3c2e-8d7a-4e61-9c0b-2a4d6e8f1a37"

    assert kind == "codat.read_completed"
    assert native_id == event_id
    assert [(o.run_id, o.state) for o in observations] == [
        (f"{event_id}:{CONNECTION}:invoices", RunState.succeeded),
        (f"{event_id}:{CONNECTION}:customers", RunState.succeeded),
        (f"{event_id}:{CONNECTION}:bills", RunState.failed),
        (f"{event_id}:e91d0b37-6a2c-4f58-9d13-b07c4a5e8f26:banking-accounts", RunState.skipped),
        (f"{event_id}:4c8a1f06-2d7e-4b93-a5f0-19e6d3b7c842:banking-accounts", RunState.succeeded),
    ]
    assert len({o.run_id for o in observations}) == len(observations)
    assert observations[2].pipeline_id == f"{COMPANY}/{CONNECTION}/bills"
    assert observations[2].error_category is ErrorCategory.source
    generated = datetime(2026, 7, 14, 9, 31, 5, 112000, tzinfo=UTC)
    assert {o.occurred_at for o in observations} == {generated}
    assert {o.kind for o in observations} == {"codat.read_completed"}


def test_read_completed_run_ids_are_deterministic():
    first = parse(load("read_completed.json"))[1]
    second = parse(load("read_completed.json"))[1]

    assert [o.run_id for o in first] == [o.run_id for o in second]


def test_read_completed_issues_become_warnings_on_complete():
    _, observations, _ = parse(load("read_completed.json"))
    by_type = {o.pipeline_id.rsplit("/", 1)[1]: o for o in observations}

    assert by_type["customers"].warnings == (
        "warning.validation: Customer 'C-1042' has no contact email address.",
        "warning.validation: 2 customers share the tax number GB123456789.",
    )
    assert by_type["invoices"].warnings == ()


def test_read_completed_issues_on_a_failed_entry_are_not_warnings():
    document = load("read_completed_initial.json")
    document["payload"]["dataTypes"][1]["issues"] = [{"type": "warning.validation"}]

    _, observations, _ = parse(document)

    assert observations[1].state is RunState.failed
    assert observations[1].warnings == ()


def test_read_completed_initial_has_the_same_payload():
    kind, observations, native_id = parse(load("read_completed_initial.json"))

    assert kind == "codat.read_completed"
    assert native_id == "9e4c2a18-3b7d-4f05-8a6e-d1c0b5f27e93"
    assert [(o.state, o.error_category) for o in observations] == [
        (RunState.succeeded, None),
        (RunState.failed, ErrorCategory.auth),
    ]


@pytest.mark.parametrize("status", PULL_OPERATION_STATUSES)
def test_read_completed_entry_every_status(status):
    document = load("read_completed_initial.json")
    document["payload"]["dataTypes"][0]["status"] = status

    _, observations, _ = parse(document)

    assert observations[0].state is EXPECTED[status][0]
    assert observations[0].provider_status == status


def test_legacy_sync_error():
    kind, (observation,), native_id = parse(load("legacy_sync_error.json"))

    assert kind == "codat.legacy_sync_error"
    assert native_id == "b41e7c92-5d0a-4f36-8e2b-7c9a1d3f6e08"
    # Upper-case in the webhook; canonical, so it names the same run as the pull operation.
    assert observation.run_id == load("pull_operation.json")["id"]
    assert observation.pipeline_id == f"{COMPANY}/{CONNECTION}/bills"
    assert observation.state is RunState.failed
    assert observation.error_category is ErrorCategory.source
    assert observation.retryable is True
    assert observation.provider_status == "FetchError"
    assert observation.occurred_at is None
    assert observation.error_message is not None
    assert observation.error_message.startswith("ERROR: syncing bills")


@pytest.mark.parametrize("status", PULL_OPERATION_STATUSES)
def test_legacy_sync_error_every_status(status):
    document = load("legacy_sync_error.json")
    document["Data"]["datasetStatus"] = status

    _, (observation,), _ = parse(document)

    assert observation.state is EXPECTED[status][0]
    assert observation.error_category is EXPECTED[status][1]


def test_legacy_sync_completed():
    kind, (observation,), native_id = parse(load("legacy_sync_completed.json"))

    assert kind == "codat.legacy_sync_completed"
    assert native_id == "f7d3a0c5-9e2b-4a18-b6c4-1e0d8f5a2c67"
    assert observation.run_id == "1e6b8d20-7a3c-4f95-8c01-b4d2e9f7a356"
    assert observation.pipeline_id == f"{COMPANY}/{CONNECTION}/invoices"
    assert observation.state is RunState.succeeded
    assert observation.provider_status == "Data sync completed"
    assert observation.occurred_at is None
    assert observation.error_category is None


@pytest.mark.parametrize(
    "fixture",
    [
        "pull_operation.json",
        "read_completed.json",
        "read_completed_initial.json",
        "legacy_sync_error.json",
        "legacy_sync_completed.json",
    ],
)
def test_shape_alone_identifies_the_kind(fixture):
    parsed = parse_record((FIXTURES / fixture).read_bytes())

    assert parsed.provider is Provider.codat


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (load("pull_operation.json") | {"status": "Paused"}, "status"),
        (
            {
                **load("legacy_sync_error.json"),
                "Data": {**load("legacy_sync_error.json")["Data"], "datasetStatus": "Success"},
            },
            "Data.datasetStatus",
        ),
    ],
)
def test_unknown_status_is_unmapped(document, path):
    with pytest.raises(UnmappedStatusError) as caught:
        parse_document(document, Provider.codat)

    assert caught.value.path == path
    assert caught.value.reason == "unmapped_status"


def test_unknown_status_in_a_fanned_out_entry_is_unmapped():
    document = load("read_completed.json")
    document["payload"]["dataTypes"][3]["status"] = "Success"

    with pytest.raises(UnmappedStatusError) as caught:
        parse_document(document, Provider.codat)

    assert caught.value.path == "payload.dataTypes.3.status"


@pytest.mark.parametrize(
    "event_type",
    ["connection.disconnected", "read.started", "invoices.write.successful", "READ.COMPLETED"],
)
def test_other_event_types_are_not_run_statuses(event_type):
    document = load("connection_disconnected.json") | {"eventType": event_type}

    with pytest.raises(UnknownPayloadKindError):
        parse_document(document, Provider.codat)


@pytest.mark.parametrize("rule_type", ["Dataset data changed", "New company synchronised"])
def test_other_legacy_rules_are_not_run_statuses(rule_type):
    document = load("legacy_sync_completed.json") | {"RuleType": rule_type}

    with pytest.raises(UnknownPayloadKindError):
        parse_document(document, Provider.codat)


@pytest.mark.parametrize(
    ("fixture", "change", "path"),
    [
        ("pull_operation.json", {"id": "not-a-uuid"}, "id"),
        ("pull_operation.json", {"companyId": 12}, "companyId"),
        ("pull_operation.json", {"dataType": ""}, "dataType"),
        ("pull_operation.json", {"dataType": "x" * 129}, "dataType"),
        ("pull_operation.json", {"progress": "10"}, "progress"),
        ("pull_operation.json", {"isCompleted": "true"}, "isCompleted"),
        ("pull_operation.json", {"requested": "last Tuesday"}, "requested"),
        ("pull_operation.json", {"status": 5}, "status"),
        ("read_completed.json", {"generatedDate": None}, "generatedDate"),
        ("legacy_sync_error.json", {"AlertId": ""}, "AlertId"),
        ("legacy_sync_completed.json", {"Data": {"dataType": "invoices"}}, "Data.datasetId"),
        (
            "legacy_sync_completed.json",
            {"Data": {"datasetId": "1e6b8d20-7a3c-4f95-8c01-b4d2e9f7a356"}},
            "Data.dataType",
        ),
    ],
)
def test_rejects_invalid_fields_with_their_path(fixture, change, path):
    document = load(fixture) | change

    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.codat)

    assert caught.value.path == path


@pytest.mark.parametrize("field", ["status", "requested", "progress", "isCompleted", "isErrored"])
def test_pull_operation_rejects_missing_required_fields(field):
    document = load("pull_operation.json")
    del document[field]

    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.codat)

    assert caught.value.path == field


@pytest.mark.parametrize("field", ["id", "companyId", "connectionId", "dataType"])
def test_pull_operation_without_an_identifying_key_is_unknown(field):
    document = load("pull_operation.json")
    del document[field]

    with pytest.raises(UnknownPayloadKindError):
        parse_document(document, Provider.codat)


@pytest.mark.parametrize(
    ("remove", "path"),
    [
        (("payload", "dataTypes", 0, "connectionId"), "payload.dataTypes.0.connectionId"),
        (("payload", "referenceCompany", "id"), "payload.referenceCompany.id"),
        (("payload", "dataTypes"), "payload.dataTypes"),
    ],
)
def test_read_completed_rejects_missing_required_fields(remove, path):
    document = load("read_completed.json")
    parent: Any = document
    for step in remove[:-1]:
        parent = parent[step]
    del parent[remove[-1]]

    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.codat)

    assert caught.value.path == path


def test_unknown_extra_fields_are_accepted():
    document = load("read_completed.json")
    document["payload"]["dataTypes"][0]["lastModified"] = "2026-07-14T09:31:00Z"
    document["deliveryAttempt"] = 2

    _, observations, _ = parse(document)

    assert len(observations) == 5
