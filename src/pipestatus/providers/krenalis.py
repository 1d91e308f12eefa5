"""Krenalis (formerly Meergo) pipeline runs: ``GET /v1/pipelines/runs/:id`` (seed ``002_…``).

The run resource has no status field, so the state is derived from ``endTime`` and the
verbatim ``error`` string; ``STATUS_TABLE`` is keyed by those conditions and
``TERMINATION_ERRORS`` names the exact strings Krenalis's code ends runs with
(providers.md §2.5). ``passed``/``failed`` hold one count per step: 6 steps in released
versions, 7 since consent management put ``Consent`` at index 3 (providers.md §2.4).
The ``GET /v1/pipelines/runs`` list ``{"runs": [...]}`` fans out, each run as if alone.
Krenalis has no run webhooks; these payloads come from our own pollers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import Field, ValidationInfo, field_validator

from pipestatus.domain.observation import Counters, Observation, StatusRule, build
from pipestatus.domain.states import ErrorCategory, Provider, RunState
from pipestatus.providers.base import (
    PayloadKind,
    ProviderModel,
    ProviderSpec,
    RunId,
    check_id,
    fan_out,
)
from pipestatus.providers.timestamps import Rfc3339, millis_between

KIND: Final = "krenalis.pipeline_run"
LIST_KIND: Final = "krenalis.pipeline_runs"

RUNNING: Final = "endTime null"
SUCCEEDED: Final = "ended, error empty"
ORGANIZATION_DISABLED: Final = "ended, error = organization has been disabled"
NODE_UNRESPONSIVE: Final = (
    "ended, error = pipeline has been terminated because the node became unresponsive"
)
INTERNAL_ERROR: Final = "ended, error = an internal error has occurred"
OTHER_ERROR: Final = "ended, other error"

#: Derived condition → common meaning (the README table is rendered from these rows).
STATUS_TABLE: Final[Mapping[str, StatusRule]] = {
    RUNNING: StatusRule(RunState.running, note="no queued state is observable"),
    SUCCEEDED: StatusRule(
        RunState.succeeded,
        note="warnings if records failed at Receive, validation, Transformation or Finalize;"
        " Filter and Consent drops are not errors",
    ),
    ORGANIZATION_DISABLED: StatusRule(
        RunState.cancelled, note="administrative stop of every live run of the organization"
    ),
    NODE_UNRESPONSIVE: StatusRule(RunState.failed, ErrorCategory.infrastructure, retryable=True),
    INTERNAL_ERROR: StatusRule(RunState.failed, ErrorCategory.internal, retryable=True),
    OTHER_ERROR: StatusRule(
        RunState.failed, ErrorCategory.pipeline_error, note="the error names the failing step"
    ),
}

#: Exact ``error`` strings Krenalis ends runs with → ``STATUS_TABLE`` key.
TERMINATION_ERRORS: Final[Mapping[str, str]] = {
    "organization has been disabled": ORGANIZATION_DISABLED,
    "pipeline has been terminated because the node became unresponsive": NODE_UNRESPONSIVE,
    "an internal error has occurred": INTERNAL_ERROR,
}

#: Step names by the length of the count arrays.
STEP_LAYOUTS: Final[Mapping[int, tuple[str, ...]]] = {
    6: ("Receive", "InputValidation", "Filter", "Transformation", "OutputValidation", "Finalize"),
    7: (
        "Receive",
        "InputValidation",
        "Filter",
        "Consent",
        "Transformation",
        "OutputValidation",
        "Finalize",
    ),
}

#: Steps whose failures are record-level errors. Receive is one too: like the validation
#: steps it records a message, while Filter and Consent drop records without one.
ERROR_STEPS: Final = frozenset(
    {"Receive", "InputValidation", "Transformation", "OutputValidation", "Finalize"}
)
#: Steps whose failures are records deliberately left out.
DROP_STEPS: Final = frozenset({"Filter", "Consent"})

_MIN_STEPS, _MAX_STEPS = min(STEP_LAYOUTS), max(STEP_LAYOUTS)

Count = Annotated[int, Field(strict=True, ge=0)]


class KrenalisRun(ProviderModel):
    """One pipeline run; ``endTime`` is required but null while the run is live."""

    id: RunId
    pipeline: RunId
    start_time: Rfc3339 = Field(alias="startTime")
    end_time: Rfc3339 | None = Field(alias="endTime")
    passed: list[Count] = Field(min_length=_MIN_STEPS, max_length=_MAX_STEPS)
    failed: list[Count] = Field(min_length=_MIN_STEPS, max_length=_MAX_STEPS)
    #: Empty while running and when the run ended well.
    error: str = ""

    @field_validator("id", "pipeline")
    @classmethod
    def _usable_id(cls, value: str, info: ValidationInfo) -> str:
        return check_id(value, what=info.field_name or "id")

    @field_validator("failed")
    @classmethod
    def _same_layout(cls, value: list[int], info: ValidationInfo) -> list[int]:
        passed = info.data.get("passed")
        if passed is not None and len(passed) != len(value):
            raise ValueError(f"failed has {len(value)} steps but passed has {len(passed)}")
        return value


class KrenalisRuns(ProviderModel):
    """``GET /v1/pipelines/runs``: every run of the workspace; no paging, not chronological."""

    runs: list[KrenalisRun]


def condition(run: KrenalisRun) -> str:
    """The ``STATUS_TABLE`` key the run is in."""
    if run.end_time is None:
        return RUNNING
    if not run.error:
        return SUCCEEDED
    return TERMINATION_ERRORS.get(run.error, OTHER_ERROR)


def _tally(run: KrenalisRun) -> tuple[Counters, tuple[str, ...]]:
    """Counters and record-level warnings from the per-step arrays of an ended run."""
    steps = STEP_LAYOUTS[len(run.passed)]
    failed_at = dict(zip(steps, run.failed, strict=True))
    warnings = tuple(
        f"{failed_at[step]} records failed at {step}"
        for step in steps
        if step in ERROR_STEPS and failed_at[step] > 0
    )
    counters = Counters(
        rows_in=run.passed[0] + run.failed[0],
        rows_out=run.passed[-1],
        rows_failed=sum(failed_at[step] for step in ERROR_STEPS),
        rows_filtered=sum(failed_at[step] for step in DROP_STEPS if step in failed_at),
        duration_ms=millis_between(run.start_time, run.end_time),
    )
    return counters, warnings


def normalize(run: KrenalisRun) -> tuple[Observation, ...]:
    """One observation; counts are all zero while running, so they are reported only at the end."""
    ended = run.end_time is not None
    counters, warnings = _tally(run) if ended else (Counters(), ())
    return (
        build(
            STATUS_TABLE[condition(run)],
            provider=Provider.krenalis,
            run_id=run.id,
            pipeline_id=run.pipeline,
            attempt=1,
            provider_status=None,
            occurred_at=run.end_time or run.start_time,
            kind=KIND,
            error_message=run.error or None,
            warnings=warnings,
            counters=counters,
            started_at=run.start_time,
            ended_at=run.end_time,
        ),
    )


def _matches(document: Mapping[str, Any]) -> bool:
    """The per-step count arrays are what no other provider's run resource has."""
    return {"id", "pipeline", "passed", "failed"} <= document.keys()


def _is_list(document: Mapping[str, Any]) -> bool:
    return isinstance(document.get("runs"), list)


_RUN: Final = PayloadKind(
    name=KIND,
    model=KrenalisRun,
    matches=_matches,
    normalize=normalize,
    description="pipeline-run resource (GET /v1/pipelines/runs/:id)",
)

SPEC = ProviderSpec(
    provider=Provider.krenalis,
    kinds=(
        _RUN,
        PayloadKind(
            name=LIST_KIND,
            model=KrenalisRuns,
            matches=_is_list,
            normalize=fan_out(_RUN, field="runs", kind=LIST_KIND),
            description='run list {"runs": [...]} (GET /v1/pipelines/runs; fans out, each'
            " run as if it arrived alone)",
        ),
    ),
    status_table=STATUS_TABLE,
)
