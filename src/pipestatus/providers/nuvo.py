"""nuvo (now Ingestro) Data Pipelines executions (seed ``004_…``, providers.md §4).

Four shapes, told apart by where the execution sits: the bare resource, the
``GET /execution/{id}`` response ``{"data": {...}}``, the ``POST /execution/`` response
``{"data": [...]}`` (one execution per input file; fans out), and the ``GET /execution/``
read-all page, which adds ``pagination`` (fans out too: each entry as if it came alone).

Each ``logs[]`` entry is one run of the execution (``CREATE``, then one per ``FIX``), so the
attempt is the number of entries, and the counters come from the last one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from pipestatus.domain.observation import Counters, Observation, StatusRule, build
from pipestatus.domain.states import ErrorCategory, Provider, RunState
from pipestatus.providers.base import (
    PayloadKind,
    ProviderModel,
    ProviderSpec,
    check_id,
    fan_out,
    lookup_status,
)
from pipestatus.providers.timestamps import FlexibleTimestamp, Rfc3339

EXECUTION: Final = "nuvo.execution"
EXECUTION_RESPONSE: Final = "nuvo.execution_response"
CREATE_RESPONSE: Final = "nuvo.create_response"
READ_ALL_RESPONSE: Final = "nuvo.read_all_response"

_failed = RunState.failed

#: ``error.type`` of a FAILED execution → the failure's meaning.
ERROR_TYPE_TABLE: Final[Mapping[str, StatusRule]] = {
    "SOURCE_UNRESPONSIVE": StatusRule(_failed, ErrorCategory.source_unavailable, retryable=True),
    "SOURCE_DATA_EMPTY": StatusRule(_failed, ErrorCategory.source_empty),
    "PARSING_FAILURE": StatusRule(_failed, ErrorCategory.parse),
    "DESTINATION_UNRESPONSIVE": StatusRule(
        _failed, ErrorCategory.destination_unavailable, retryable=True
    ),
    "DESTINATION_SIZE_LIMIT": StatusRule(_failed, ErrorCategory.destination_limit),
    "WRITE_FILE_FAILURE": StatusRule(_failed, ErrorCategory.write_failed),
    "ERROR_THRESHOLD_EXCEEDED": StatusRule(_failed, ErrorCategory.quality_threshold),
}


def _error_types_note() -> str:
    """The error-type table in words, so the rendered README row shows it too."""
    rows = ", ".join(
        f"{name} → {rule.error_category}{' (retryable)' if rule.retryable else ''}"
        for name, rule in ERROR_TYPE_TABLE.items()
        if rule.error_category is not None
    )
    return f"category by error.type: {rows}; no error object → unknown"


#: Execution ``status`` → common meaning (the README table's rows).
STATUS_TABLE: Final[Mapping[str, StatusRule]] = {
    "PROCESSING": StatusRule(RunState.running, note="also covers not-yet-started executions"),
    "SUCCESSFUL": StatusRule(
        RunState.succeeded, note="warnings if the last log reports error cells"
    ),
    "FAILED": StatusRule(RunState.failed, ErrorCategory.unknown, note=_error_types_note()),
}

#: The seed's prose says ``CREATE``, its example ``CREATED``.
LOG_TYPES: Final = ("CREATE", "CREATED", "FIX")
TRIGGER_TYPES: Final = ("MANUAL", "SCHEDULED", "EVENT")
ACTOR_TYPES: Final = ("USER", "SUB_ORG")

Count = Annotated[int, Field(strict=True, ge=0)]


def _documented(values: Any) -> Any:
    """A plain string field listing its documented values: unknown ones are accepted."""
    return Field(json_schema_extra={"enum": list(values)})


class Actor(ProviderModel):
    """Who created or last updated the execution."""

    id: str | None = None
    name: str | None = None
    identifier: str | None = None
    type: Annotated[str, _documented(ACTOR_TYPES)] | None = None


class ExecutionError(ProviderModel):
    """Why the execution failed; documented as present only on failed executions."""

    type: Annotated[str, _documented(ERROR_TYPE_TABLE)]
    message: str | None = None


class LogData(ProviderModel):
    total_rows: Count | None = None
    total_cells: Count | None = None
    total_error_cells: Count | None = None
    total_error_rows: Count | None = None


class Log(ProviderModel):
    """One run of the execution (the first, or one after a fix)."""

    type: Annotated[str, _documented(LOG_TYPES)] | None = None
    status: Annotated[str, _documented(STATUS_TABLE)] | None = None
    data: LogData | None = None
    #: Milliseconds.
    duration: Count | None = None
    #: The seed's prose says ``started_on``, its example ``started_at``.
    started_at: Rfc3339 | None = Field(
        default=None, validation_alias=AliasChoices("started_at", "started_on")
    )


class Execution(ProviderModel):
    """One execution (run) of a pipeline."""

    id: str
    pipeline: str
    status: Annotated[str, _documented(STATUS_TABLE)]
    error: ExecutionError | None = None
    logs: list[Log] | None = None
    trigger_type: Annotated[str, _documented(TRIGGER_TYPES)] | None = None
    configuration: str | None = None
    created_at: FlexibleTimestamp | None = None
    created_by: Actor | None = None
    updated_at: FlexibleTimestamp | None = None
    updated_by: Actor | None = None

    @field_validator("id", "pipeline")
    @classmethod
    def _usable_id(cls, value: str, info: ValidationInfo) -> str:
        return check_id(value, what=info.field_name or "id")


class CreatedExecution(Execution):
    """An entry of the create response: always ``PROCESSING``, always with a trigger type."""

    trigger_type: Annotated[str, _documented(TRIGGER_TYPES)]


class ExecutionResponse(ProviderModel):
    """``GET /execution/{id}``."""

    data: Execution


class CreateResponse(ProviderModel):
    """``POST /execution/``."""

    data: list[CreatedExecution]


class Pagination(ProviderModel):
    """Read-all page metadata; not status-relevant, so typed loosely."""

    #: The number of entries in ``data``.
    total: int | None = None
    offset: int | None = None
    limit: int | None = None


class ReadAllResponse(ProviderModel):
    """``GET /execution/`` (read all): a page of executions."""

    data: list[Execution]
    pagination: Pagination


def observe(execution: Execution, *, path: str = "", kind: str = EXECUTION) -> Observation:
    """The observation of one execution; ``path`` locates it in the payload for errors."""
    rule = lookup_status(STATUS_TABLE, Provider.nuvo, execution.status, path=f"{path}status")
    # Only a failed execution has a cause; the seed's read-all example shows one elsewhere too.
    failure = execution.error if rule.state is RunState.failed else None
    if failure is not None:
        rule = lookup_status(
            ERROR_TYPE_TABLE, Provider.nuvo, failure.type, path=f"{path}error.type"
        )
    logs = execution.logs or []
    last = logs[-1] if logs else None
    data = last.data if last is not None and last.data is not None else LogData()
    return build(
        rule,
        provider=Provider.nuvo,
        run_id=execution.id,
        pipeline_id=execution.pipeline,
        attempt=max(len(logs), 1),
        provider_status=execution.status,
        occurred_at=execution.updated_at
        or execution.created_at
        or (last.started_at if last is not None else None),
        kind=kind,
        error_message=failure.message if failure is not None else None,
        warnings=_cell_warnings(data),
        counters=Counters(
            rows_out=data.total_rows,
            rows_failed=data.total_error_rows,
            quality_invalid=data.total_error_cells,
            quality_valid=_difference(data.total_cells, data.total_error_cells),
            duration_ms=last.duration if last is not None else None,
        ),
        started_at=execution.created_at or (logs[0].started_at if logs else None),
    )


def _cell_warnings(data: LogData) -> tuple[str, ...]:
    if not data.total_error_cells:
        return ()
    of_total = f" of {data.total_cells}" if data.total_cells is not None else ""
    return (f"{data.total_error_cells}{of_total} output cells have errors",)


def _difference(total: int | None, part: int | None) -> int | None:
    if total is None or part is None or part > total:
        return None
    return total - part


def _normalize_bare(execution: Execution) -> tuple[Observation, ...]:
    return (observe(execution),)


def _normalize_response(response: ExecutionResponse) -> tuple[Observation, ...]:
    return (observe(response.data, path="data.", kind=EXECUTION_RESPONSE),)


def _normalize_created(response: CreateResponse) -> tuple[Observation, ...]:
    return tuple(
        observe(execution, path=f"data.{index}.", kind=CREATE_RESPONSE)
        for index, execution in enumerate(response.data)
    )


def _is_read_all_response(document: Mapping[str, Any]) -> bool:
    return isinstance(document.get("data"), list) and "pagination" in document


def _is_bare(document: Mapping[str, Any]) -> bool:
    return {"id", "pipeline", "status"} <= document.keys()


def _is_response(document: Mapping[str, Any]) -> bool:
    return isinstance(document.get("data"), dict) and "id" not in document


def _is_create_response(document: Mapping[str, Any]) -> bool:
    return isinstance(document.get("data"), list) and "pagination" not in document


_BARE: Final = PayloadKind(
    name=EXECUTION,
    model=Execution,
    matches=_is_bare,
    normalize=_normalize_bare,
    description="execution resource, bare",
)

SPEC = ProviderSpec(
    provider=Provider.nuvo,
    kinds=(
        _BARE,
        PayloadKind(
            name=EXECUTION_RESPONSE,
            model=ExecutionResponse,
            matches=_is_response,
            normalize=_normalize_response,
            description='execution resource wrapped as {"data": {...}} (GET /execution/{id})',
        ),
        PayloadKind(
            name=CREATE_RESPONSE,
            model=CreateResponse,
            matches=_is_create_response,
            normalize=_normalize_created,
            description='create response {"data": [...]} (POST /execution/; fans out)',
        ),
        PayloadKind(
            name=READ_ALL_RESPONSE,
            model=ReadAllResponse,
            matches=_is_read_all_response,
            normalize=fan_out(_BARE, field="data", kind=READ_ALL_RESPONSE),
            description='read-all page {"data": [...], "pagination": {...}} (GET /execution/;'
            " fans out, each entry as if it arrived alone)",
        ),
    ),
    status_table=STATUS_TABLE,
)
