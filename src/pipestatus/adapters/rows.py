"""Stored rows back into domain values, shared by the unit of work and the read side."""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg

from pipestatus.domain.observation import Counters, Observation
from pipestatus.domain.states import ErrorCategory, Provider, RunState


def row_to_observation(row: asyncpg.Record) -> Observation:
    """A stored run row back into the observation that is its current maximum."""
    category = row["error_category"]
    occurred: datetime | None = row["occurred_at"]
    return Observation(
        provider=Provider(row["provider"]),
        run_id=row["run_id"],
        pipeline_id=row["pipeline_id"],
        attempt=row["attempt"],
        state=RunState(row["state"]),
        provider_status=row["provider_status"],
        occurred_at=occurred,
        phase=row["phase"],
        phase_rank=row["phase_rank"],
        error_category=ErrorCategory(category) if category else None,
        error_message=row["error_message"],
        retryable=row["retryable"],
        warnings=tuple(json.loads(row["warnings"])),
        counters=Counters(**json.loads(row["counters"])),
        kind=row["kind"],
        event_id=row["event_id"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
    )
