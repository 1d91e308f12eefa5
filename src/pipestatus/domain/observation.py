"""The normalized observation: one provider report about one run, in common words."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from pipestatus.domain.states import (
    COARSE_RANK,
    TERMINAL_PRECEDENCE,
    ErrorCategory,
    Provider,
    RunState,
)

#: The largest attempt (and phase rank) storable: PostgreSQL ``integer`` columns.
MAX_ATTEMPT = 2**31 - 1

#: Sorts observations without a provider timestamp before every timestamped one.
_NO_TIME = -(2**62)


@dataclass(frozen=True, slots=True)
class Counters:
    """Volumes a provider reports for a run; ``None`` where it reports nothing."""

    rows_in: int | None = None
    rows_out: int | None = None
    rows_failed: int | None = None
    rows_filtered: int | None = None
    quality_valid: int | None = None
    quality_invalid: int | None = None
    quality_missing: int | None = None
    bytes: int | None = None
    duration_ms: int | None = None

    def as_dict(self) -> dict[str, int]:
        """The reported counters only, for storage and display."""
        return {
            f.name: value
            for f in dataclasses.fields(self)
            if (value := getattr(self, f.name)) is not None
        }


@dataclass(frozen=True, slots=True)
class StatusRule:
    """What one provider status value means in the common model (a mapping-table row)."""

    state: RunState
    error_category: ErrorCategory | None = None
    retryable: bool = False
    #: Provider phase name within a coarse state (Codat ``Mapping``), else ``None``.
    phase: str | None = None
    #: Order of the phase within its coarse state (higher = further along).
    phase_rank: int = 0
    note: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """One provider report about one run, normalized (docs/architecture.md).

    ``event_id`` is the identity of the Kafka record the observation came from; it is
    the last tie-breaker of the convergence order and the dedupe key's basis.
    """

    provider: Provider
    run_id: str
    pipeline_id: str
    attempt: int
    state: RunState
    provider_status: str | None
    occurred_at: datetime | None
    phase: str | None = None
    phase_rank: int = 0
    error_category: ErrorCategory | None = None
    error_message: str | None = None
    retryable: bool | None = None
    warnings: tuple[str, ...] = ()
    counters: Counters = field(default_factory=Counters)
    #: Payload kind the observation was read from (``codat.read_completed`` …).
    kind: str = ""
    event_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def order_key(self) -> tuple[int, int, int, int, int, str]:
        """The convergence order (docs/architecture.md); the run's state is the maximum key seen."""
        when = _NO_TIME if self.occurred_at is None else _epoch_micros(self.occurred_at)
        return (
            self.attempt,
            COARSE_RANK[self.state],
            self.phase_rank,
            when,
            TERMINAL_PRECEDENCE[self.state],
            self.event_id,
        )

    def with_event_id(self, event_id: str) -> Observation:
        # Spelled out: dataclasses.replace introspects the fields on every call, and this
        # runs for every observation of every record (a test checks no field is missed).
        return Observation(
            self.provider, self.run_id, self.pipeline_id, self.attempt, self.state,
            self.provider_status, self.occurred_at, self.phase, self.phase_rank,
            self.error_category, self.error_message, self.retryable, self.warnings,
            self.counters, self.kind, event_id, self.started_at, self.ended_at,
        )  # fmt: skip


def _epoch_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def build(
    rule: StatusRule,
    *,
    provider: Provider,
    run_id: str,
    pipeline_id: str,
    attempt: int,
    provider_status: str | None,
    occurred_at: datetime | None,
    kind: str,
    error_message: str | None = None,
    error_category: ErrorCategory | None = None,
    retryable: bool | None = None,
    warnings: tuple[str, ...] = (),
    counters: Counters | None = None,
    phase: str | None = None,
    phase_rank: int | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
) -> Observation:
    """Builds an observation from a mapping-table row.

    ``error_category`` and ``retryable`` are kept only for failed runs (docs/architecture.md)
    and come from the row unless the caller derived a finer one; ``warnings`` only for
    succeeded runs.
    """
    failed = rule.state is RunState.failed
    category = (error_category or rule.error_category or ErrorCategory.unknown) if failed else None
    return Observation(
        provider=provider,
        run_id=run_id,
        pipeline_id=pipeline_id,
        attempt=attempt,
        state=rule.state,
        provider_status=provider_status,
        occurred_at=occurred_at,
        phase=phase if phase is not None else rule.phase,
        phase_rank=phase_rank if phase_rank is not None else rule.phase_rank,
        error_category=category,
        error_message=error_message,
        retryable=(rule.retryable if retryable is None else retryable) if failed else None,
        warnings=warnings if rule.state is RunState.succeeded else (),
        counters=counters or Counters(),
        kind=kind,
        started_at=started_at,
        ended_at=ended_at,
    )
