"""What the workload is made of: its Kafka records, and the final state each run must reach."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from pipestatus.domain.states import Provider

Role = Literal["original", "duplicate", "invalid"]


@dataclass(frozen=True, slots=True)
class BenchRecord:
    """One Kafka record of the workload; ``provider`` names its topic."""

    provider: Provider
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    role: Role
    #: The life (one run's history) the record belongs to, and its place in it; -1 when
    #: invalid. A duplicate carries its original's life and step.
    life: int = -1
    step: int = -1
    #: Delivered after the next event of its life (a reordered delivery).
    late: bool = False
    #: The dead-letter reason an invalid record must get.
    expected_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ExpectedRun:
    state: str
    attempt: int


@dataclass
class Workload:
    seed: int
    records: list[BenchRecord]
    #: (provider, run_id) → final state and attempt.
    expected: dict[tuple[str, str], ExpectedRun]
    lives: int

    def summary(self) -> dict[str, Any]:
        """Counts by role and provider, reordered records, bytes: what the report shows."""
        roles = Counter(record.role for record in self.records)
        providers = Counter(record.provider.value for record in self.records)
        reasons = Counter(r.expected_reason for r in self.records if r.expected_reason)
        states = Counter(run.state for run in self.expected.values())
        return {
            "records": len(self.records),
            "bytes": sum(len(record.value) for record in self.records),
            "original": roles["original"],
            "duplicate": roles["duplicate"],
            "invalid": roles["invalid"],
            "late": sum(record.late for record in self.records),
            "lives": self.lives,
            "runs": len(self.expected),
            "reruns": sum(run.attempt > 1 for run in self.expected.values()),
            "providers": dict(sorted(providers.items())),
            "invalid_reasons": dict(sorted(reasons.items())),
            "final_states": dict(sorted(states.items())),
        }

    def expected_by_state(self) -> dict[tuple[str, str], int]:
        """(provider, state) → number of runs expected in it."""
        counts = Counter((provider, run.state) for (provider, _), run in self.expected.items())
        return dict(sorted(counts.items()))
