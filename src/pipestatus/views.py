"""JSON views of observations, runs and transitions: CLI output and exported schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from pipestatus.domain.observation import Observation
from pipestatus.domain.states import ErrorCategory, Provider, RunState


class ObservationView(BaseModel):
    """One normalized observation, as ``pipestatus validate`` prints it."""

    model_config = ConfigDict(frozen=True)

    provider: Provider
    kind: str = Field(description="payload kind it was read from")
    run_id: str
    pipeline_id: str
    attempt: int = Field(ge=1)
    state: RunState
    phase: str | None
    provider_status: str | None = Field(description="the provider's own status, verbatim")
    error_category: ErrorCategory | None = Field(description="failed runs only")
    error_message: str | None
    retryable: bool | None = Field(description="failed runs only")
    warnings: list[str]
    counters: dict[str, int]
    occurred_at: datetime | None = Field(description="provider time of the report, UTC")
    started_at: datetime | None
    ended_at: datetime | None
    event_id: str | None = None

    @classmethod
    def of(cls, o: Observation) -> ObservationView:
        return cls(
            provider=o.provider,
            kind=o.kind,
            run_id=o.run_id,
            pipeline_id=o.pipeline_id,
            attempt=o.attempt,
            state=o.state,
            phase=o.phase,
            provider_status=o.provider_status,
            error_category=o.error_category,
            error_message=o.error_message,
            retryable=o.retryable,
            warnings=list(o.warnings),
            counters=o.counters.as_dict(),
            occurred_at=o.occurred_at,
            started_at=o.started_at,
            ended_at=o.ended_at,
            event_id=o.event_id or None,
        )


class RunView(ObservationView):
    """A run's current row."""

    created_at: datetime
    updated_at: datetime
    progressed_at: datetime = Field(description="when the visible state last changed")


class TransitionView(BaseModel):
    """One appended change of a run's visible state."""

    model_config = ConfigDict(frozen=True)

    provider: Provider
    run_id: str
    pipeline_id: str
    from_state: RunState | None
    to_state: RunState
    from_phase: str | None
    to_phase: str | None
    attempt: int
    provider_status: str | None
    error_category: ErrorCategory | None
    error_message: str | None
    retryable: bool | None
    event_id: str
    occurred_at: datetime | None
    recorded_at: datetime
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def common_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the normalized observation and of a transition."""
    return {
        "observation": TypeAdapter(ObservationView).json_schema(mode="serialization"),
        "transition": TypeAdapter(TransitionView).json_schema(mode="serialization"),
    }
