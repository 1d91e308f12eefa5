"""Codat data reads: pull operations, ``read.completed[.initial]`` and legacy rule webhooks.

A run is one pull operation (formerly "dataset") of one data type; its pipeline is
``companyId/connectionId/dataType``. Five payload kinds report runs:

- ``codat.pull_operation``: the REST resource; the run id is its ``id``.
- ``codat.pull_operation_page``: a page of ``GET /companies/{id}/data/history``; each
  ``results[]`` entry yields what it would yield alone.
- ``codat.read_completed``: one webhook for many data types, fanned out to one observation
  per ``payload.dataTypes[]`` entry. An entry carries no dataset id, so its run id is
  derived, deterministically, as ``{event id}:{connectionId}:{dataType}``; the connection
  is part of it because a company may have several banking or commerce connections reading
  the same data type in one event. Such a run never meets its pull operation's own id.
- ``codat.legacy_sync_error`` / ``codat.legacy_sync_completed``: the deprecated rule webhooks;
  the run id is ``Data.datasetId`` (the pull operation id). They carry no timestamp, so their
  observations order by state and rank alone.

Other Codat events (``connection.*``, writes, rate limits) do not report runs and are
``unknown_payload_kind``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pipestatus.domain.observation import Counters, Observation, StatusRule, build
from pipestatus.domain.states import ErrorCategory, Provider, RunState
from pipestatus.errors import InvalidPayloadError
from pipestatus.providers.base import PayloadKind, ProviderSpec, fan_out, lookup_status
from pipestatus.providers.codat_models import (
    READ_EVENT_TYPES,
    SYNC_COMPLETED_RULE,
    SYNC_ERROR_RULE,
    LegacySyncCompleted,
    LegacySyncError,
    PullOperation,
    PullOperationPage,
    ReadCompleted,
    ReadDataType,
)
from pipestatus.providers.timestamps import millis_between

PULL_OPERATION: Final = "codat.pull_operation"
PULL_OPERATION_PAGE: Final = "codat.pull_operation_page"
READ_COMPLETED: Final = "codat.read_completed"
LEGACY_SYNC_ERROR: Final = "codat.legacy_sync_error"
LEGACY_SYNC_COMPLETED: Final = "codat.legacy_sync_completed"

_failed = RunState.failed

#: Pull-operation status → common meaning, in lifecycle order (the README table's rows).
#: Running phases rank in the order Codat's status page lists them.
STATUS_TABLE: Final[Mapping[str, StatusRule]] = {
    "Initial": StatusRule(RunState.queued, phase="Initial", phase_rank=0, note="undocumented"),
    "Queued": StatusRule(RunState.queued, phase="Queued", phase_rank=1),
    "Fetching": StatusRule(
        RunState.running, phase="Fetching", phase_rank=1, note="may pause for a long time"
    ),
    "MapQueued": StatusRule(RunState.running, phase="MapQueued", phase_rank=2),
    "Mapping": StatusRule(RunState.running, phase="Mapping", phase_rank=3),
    "ValidationQueued": StatusRule(RunState.running, phase="ValidationQueued", phase_rank=4),
    "Validating": StatusRule(RunState.running, phase="Validating", phase_rank=5),
    "ProcessingQueued": StatusRule(RunState.running, phase="ProcessingQueued", phase_rank=6),
    "Processing": StatusRule(RunState.running, phase="Processing", phase_rank=7),
    "Complete": StatusRule(
        RunState.succeeded,
        note=f"warnings if issues[] is non-empty; the legacy {SYNC_COMPLETED_RULE!r} webhook"
        " (no status field) maps here too",
    ),
    "NotSupported": StatusRule(
        RunState.skipped, note="the integration does not support the data type"
    ),
    "Cancelled": StatusRule(RunState.cancelled),
    "FetchError": StatusRule(_failed, ErrorCategory.source, retryable=True),
    "MapError": StatusRule(_failed, ErrorCategory.mapping),
    "ProcessingError": StatusRule(_failed, ErrorCategory.processing),
    "ValidationError": StatusRule(_failed, ErrorCategory.validation),
    "InternalError": StatusRule(_failed, ErrorCategory.internal, retryable=True),
    "AuthError": StatusRule(_failed, ErrorCategory.auth, note="the company must re-link"),
    "PermissionsError": StatusRule(_failed, ErrorCategory.permission),
    "RateLimitError": StatusRule(_failed, ErrorCategory.rate_limited, retryable=True),
    "PrerequisiteNotMet": StatusRule(_failed, ErrorCategory.prerequisite),
}

#: The legacy ``Data sync completed`` rule has no status; its ``RuleType`` is the report.
LEGACY_COMPLETED_RULE: Final = StatusRule(
    RunState.succeeded, note=f"legacy {SYNC_COMPLETED_RULE!r} webhook (no status field)"
)


def _pipeline_id(company_id: str, connection_id: str, data_type: str) -> str:
    return f"{company_id}/{connection_id}/{data_type}"


def normalize_pull_operation(operation: PullOperation) -> tuple[Observation, ...]:
    rule = lookup_status(STATUS_TABLE, Provider.codat, operation.status, path="status")
    return (
        build(
            rule,
            provider=Provider.codat,
            run_id=operation.id,
            pipeline_id=_pipeline_id(
                operation.company_id, operation.connection_id, operation.data_type
            ),
            attempt=1,
            provider_status=operation.status,
            occurred_at=operation.completed or operation.requested,
            kind=PULL_OPERATION,
            error_message=operation.error_message,
            counters=Counters(duration_ms=millis_between(operation.requested, operation.completed)),
            started_at=operation.requested,
            ended_at=operation.completed,
        ),
    )


def read_run_id(event_id: str, entry: ReadDataType) -> str:
    """The derived run id of one ``dataTypes[]`` entry (see the module docstring)."""
    return f"{event_id}:{entry.connection_id}:{entry.data_type}"


def normalize_read_completed(event: ReadCompleted) -> tuple[Observation, ...]:
    """One observation per data type read, in ``dataTypes[]`` order."""
    return tuple(
        _observe_read(event, index, entry) for index, entry in enumerate(event.payload.data_types)
    )


def _observe_read(event: ReadCompleted, index: int, entry: ReadDataType) -> Observation:
    rule = lookup_status(
        STATUS_TABLE, Provider.codat, entry.status, path=f"payload.dataTypes.{index}.status"
    )
    warnings = tuple(
        f"{issue.type}: {issue.message}" if issue.message else issue.type
        for issue in entry.issues or ()
    )
    company_id = event.payload.reference_company.id
    return build(
        rule,
        provider=Provider.codat,
        run_id=read_run_id(event.id, entry),
        pipeline_id=_pipeline_id(company_id, entry.connection_id, entry.data_type),
        attempt=1,
        provider_status=entry.status,
        occurred_at=event.generated_date,
        kind=READ_COMPLETED,
        warnings=warnings,
    )


def normalize_legacy_sync_error(event: LegacySyncError) -> tuple[Observation, ...]:
    status = event.data.dataset_status
    rule = lookup_status(STATUS_TABLE, Provider.codat, status, path="Data.datasetStatus")
    return (
        build(
            rule,
            provider=Provider.codat,
            run_id=event.data.dataset_id,
            pipeline_id=_pipeline_id(
                event.company_id, event.data_connection_id, event.data.data_type
            ),
            attempt=1,
            provider_status=status,
            occurred_at=None,
            kind=LEGACY_SYNC_ERROR,
            error_message=event.message,
        ),
    )


def normalize_legacy_sync_completed(event: LegacySyncCompleted) -> tuple[Observation, ...]:
    if event.data.data_type is None:
        raise InvalidPayloadError(
            "dataType is null: a Codat pipeline is keyed by company/connection/dataType",
            path="Data.dataType",
        )
    return (
        build(
            LEGACY_COMPLETED_RULE,
            provider=Provider.codat,
            run_id=event.data.dataset_id,
            pipeline_id=_pipeline_id(
                event.company_id, event.data_connection_id, event.data.data_type
            ),
            attempt=1,
            provider_status=SYNC_COMPLETED_RULE,
            occurred_at=None,
            kind=LEGACY_SYNC_COMPLETED,
        ),
    )


def _is_pull_operation(document: Mapping[str, Any]) -> bool:
    return {"id", "companyId", "connectionId", "dataType"} <= document.keys()


def _is_pull_operation_page(document: Mapping[str, Any]) -> bool:
    paging = {"results", "pageNumber", "pageSize", "totalResults"}
    return paging <= document.keys() and isinstance(document["results"], list)


def _is_read_completed(document: Mapping[str, Any]) -> bool:
    event_type = document.get("eventType")  # any JSON value: a list is not hashable
    return isinstance(event_type, str) and event_type in READ_EVENT_TYPES


def _is_legacy_sync_error(document: Mapping[str, Any]) -> bool:
    return document.get("RuleType") == SYNC_ERROR_RULE


def _is_legacy_sync_completed(document: Mapping[str, Any]) -> bool:
    return document.get("RuleType") == SYNC_COMPLETED_RULE


def _alert_id(event: LegacySyncError | LegacySyncCompleted) -> str:
    return event.alert_id


def _envelope_id(event: ReadCompleted) -> str:
    return event.id


_PULL_OPERATION: Final = PayloadKind(
    name=PULL_OPERATION,
    model=PullOperation,
    matches=_is_pull_operation,
    normalize=normalize_pull_operation,
    description="pull operation resource (GET /companies/{id}/data/history/{datasetId})",
)

SPEC = ProviderSpec(
    provider=Provider.codat,
    kinds=(
        _PULL_OPERATION,
        PayloadKind(
            name=PULL_OPERATION_PAGE,
            model=PullOperationPage,
            matches=_is_pull_operation_page,
            normalize=fan_out(_PULL_OPERATION, field="results", kind=PULL_OPERATION_PAGE),
            description="page of pull operations (GET /companies/{id}/data/history; fans out,"
            " each entry as if it arrived alone)",
        ),
        PayloadKind(
            name=READ_COMPLETED,
            model=ReadCompleted,
            matches=_is_read_completed,
            normalize=normalize_read_completed,
            native_event_id=_envelope_id,
            description="read.completed / read.completed.initial webhook (fans out per data type)",
        ),
        PayloadKind(
            name=LEGACY_SYNC_ERROR,
            model=LegacySyncError,
            matches=_is_legacy_sync_error,
            normalize=normalize_legacy_sync_error,
            native_event_id=_alert_id,
            description=f"legacy {SYNC_ERROR_RULE!r} rule webhook",
        ),
        PayloadKind(
            name=LEGACY_SYNC_COMPLETED,
            model=LegacySyncCompleted,
            matches=_is_legacy_sync_completed,
            normalize=normalize_legacy_sync_completed,
            native_event_id=_alert_id,
            description=f"legacy {SYNC_COMPLETED_RULE!r} rule webhook",
        ),
    ),
    status_table=STATUS_TABLE,
)
