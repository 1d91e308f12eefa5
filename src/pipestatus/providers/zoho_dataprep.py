"""Zoho DataPrep: the Job Summary response mapped onto the common run model (README mapping table).

Zoho has no outbound run webhook; a poller publishes Job Summary responses. Each yields
one observation of the run ``pipelinerun.id``. Where the run status alone says too little,
the stages (``pipelinetaskinstances``) add it: which stage failed first (the error
category), how far a running run got (the phase), and what the exports measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pipestatus.domain.observation import Counters, Observation, StatusRule, build
from pipestatus.domain.states import TERMINAL, ErrorCategory, Provider, RunState
from pipestatus.providers.base import PayloadKind, ProviderSpec, lookup_status
from pipestatus.providers.timestamps import millis_between
from pipestatus.providers.zoho_models import (
    JobSummaryResponse,
    PipelineRun,
    TaskInstance,
    api_error_detail,
)

KIND_JOB_SUMMARY: Final = "zoho_dataprep.job_summary"

#: ``pipelinerun.execution_status`` (as a string) → common meaning.
STATUS_TABLE: Final[Mapping[str, StatusRule]] = {
    "2": StatusRule(RunState.queued, note="Created"),
    "0": StatusRule(RunState.running, note="Running; phase = furthest started stage"),
    "1": StatusRule(
        RunState.succeeded, note="Success; warnings when the exported data has invalid values"
    ),
    "-1": StatusRule(
        RunState.failed,
        ErrorCategory.unknown,
        retryable=False,
        note="Failure; category from the first failed stage in pipeline order",
    ),
    "-2": StatusRule(RunState.cancelled, note="Stopped"),
    "-3": StatusRule(RunState.failed, ErrorCategory.killed, retryable=True, note="System killed"),
}

#: Statuses whose error category comes from the first failed stage rather than the table.
_CATEGORY_FROM_FAILED_STAGE: Final = frozenset({"-1"})
#: Statuses that end by a kill or stop, whose end time is ``modified_time`` ("Kill or stop")
#: when ``completion_time`` is absent.
_ENDED_BY_KILL_OR_STOP: Final = frozenset({"-2", "-3"})

_STARTED: Final = frozenset({0, 1})
_ONE_MILLISECOND: Final = timedelta(milliseconds=1)
_FAILED: Final = -1


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage type: its place in pipeline order and what its failure means."""

    phase: str
    #: Pipeline order, also the phase rank of a running run (1 = first stage).
    rank: int
    failure: ErrorCategory


#: ``pipelinetask.type`` → stage, in pipeline order.
STAGES: Final[Mapping[int, Stage]] = {
    5: Stage("extract", 1, ErrorCategory.source),
    7: Stage("raw_parse", 2, ErrorCategory.parse),
    10: Stage("transform", 3, ErrorCategory.transform),
    15: Stage("stages_extract", 4, ErrorCategory.unknown),
    20: Stage("load", 5, ErrorCategory.destination),
}
#: Stages of an undocumented type sort after every documented one.
_UNKNOWN_STAGE_RANK: Final = len(STAGES) + 1


def normalize_job_summary(response: JobSummaryResponse) -> tuple[Observation, ...]:
    """One observation of the run the response describes."""
    run = response.pipelinerun
    status = str(run.execution_status)
    rule = lookup_status(
        STATUS_TABLE, Provider.zoho_dataprep, status, path="pipelinerun.execution_status"
    )
    stages = _in_pipeline_order(run.pipelinetaskinstances)
    first_failed = next((task for task in stages if task.execution_status == _FAILED), None)
    furthest_started = _furthest_known_stage(
        task for task in stages if task.execution_status in _STARTED
    )
    counters = _counters(run)
    running = rule.state is RunState.running
    return (
        build(
            rule,
            provider=Provider.zoho_dataprep,
            run_id=run.id,
            pipeline_id=run.pipeline_id,
            attempt=1 + (run.rerun_count or 0),
            provider_status=status,
            occurred_at=_latest(run.created_time, run.modified_time, run.completion_time),
            kind=KIND_JOB_SUMMARY,
            error_message=(
                first_failed.error_details
                if first_failed is not None and rule.state is RunState.failed
                else None
            ),
            error_category=(
                _failure_category(first_failed) if status in _CATEGORY_FROM_FAILED_STAGE else None
            ),
            warnings=_quality_warnings(counters),
            counters=counters,
            phase=furthest_started.phase if running and furthest_started else None,
            phase_rank=furthest_started.rank if running and furthest_started else None,
            started_at=run.created_time,
            ended_at=_ended_at(run, status, rule),
        ),
    )


def _stage_of(task: TaskInstance) -> Stage | None:
    stage_type = task.stage_type
    return STAGES.get(stage_type) if stage_type is not None else None


def _in_pipeline_order(tasks: Iterable[TaskInstance]) -> list[TaskInstance]:
    """Stages sorted by stage type, then by their index; undocumented types last."""

    def order(task: TaskInstance) -> tuple[int, int]:
        stage = _stage_of(task)
        return (stage.rank if stage else _UNKNOWN_STAGE_RANK, task.index or 0)

    return sorted(tasks, key=order)


def _furthest_known_stage(tasks: Iterable[TaskInstance]) -> Stage | None:
    known = [stage for task in tasks if (stage := _stage_of(task)) is not None]
    return max(known, key=lambda stage: stage.rank, default=None)


def _failure_category(first_failed: TaskInstance | None) -> ErrorCategory:
    """The failed stage's category; no failed stage or an undocumented one says nothing."""
    stage = _stage_of(first_failed) if first_failed is not None else None
    return stage.failure if stage is not None else ErrorCategory.unknown


def _ended_at(run: PipelineRun, status: str, rule: StatusRule) -> datetime | None:
    if rule.state not in TERMINAL:
        return None
    if run.completion_time is None and status in _ENDED_BY_KILL_OR_STOP:
        return run.modified_time
    return run.completion_time


def _latest(*moments: datetime | None) -> datetime | None:
    return max((moment for moment in moments if moment is not None), default=None)


def _counters(run: PipelineRun) -> Counters:
    """Run totals, with rows and quality from the export metrics summed over all exports."""
    metrics = [m for task in run.pipelinetaskinstances if (m := task.export_metric) is not None]
    qualities = [m.quality for m in metrics if m.quality is not None]
    audit = run.pipelinerunaudit
    exported_rows = _sum_present(m.row_count for m in metrics)
    run_rows = _first_present(run.row_count, audit.row_count if audit else None)
    run_bytes = _first_present(run.storage_used, audit.storage_used if audit else None)
    return Counters(
        rows_out=_first_present(exported_rows, run_rows),
        quality_valid=_sum_present(q.valid for q in qualities),
        quality_invalid=_sum_present(q.invalid for q in qualities),
        quality_missing=_sum_present(q.missing for q in qualities),
        bytes=run_bytes,
        duration_ms=millis_between(run.created_time, run.completion_time),
    )


def _first_present(*values: int | None) -> int | None:
    return next((value for value in values if value is not None), None)


def _sum_present(values: Iterable[int | None]) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _quality_warnings(counters: Counters) -> tuple[str, ...]:
    """A warning when the exported data holds invalid values (kept on succeeded runs only)."""
    invalid = counters.quality_invalid or 0
    if invalid <= 0:
        return ()
    noun = "value" if invalid == 1 else "values"
    return (f"export_quality_invalid: {invalid} invalid {noun}",)


def _is_job_summary(document: Mapping[str, Any]) -> bool:
    """A Job Summary response; an API error report may come without its ``pipelinerun``."""
    if "response_status" not in document:
        return False
    return "pipelinerun" in document or api_error_detail(document["response_status"]) is not None


JOB_SUMMARY: Final = PayloadKind(
    name=KIND_JOB_SUMMARY,
    model=JobSummaryResponse,
    matches=_is_job_summary,
    normalize=normalize_job_summary,
    description="Job Summary API response: one pipeline run with its stages and exports.",
)

SPEC: Final = ProviderSpec(
    provider=Provider.zoho_dataprep, kinds=(JOB_SUMMARY,), status_table=STATUS_TABLE
)
