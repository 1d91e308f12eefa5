"""What one ``pipestatus bench`` invocation asks for (the parsed command line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Options:
    events: int = 200_000
    rate: float = 2_000.0
    latency_seconds: float = 20.0
    seed: int = 1
    skip_baseline: bool = False
    repeat: int = 1
    json_only: bool = False
    profile: Path | None = None
    baseline_kafka_commit: bool = False
    keep_logs: bool = False
    #: With 2 or more, each repetition also drains with that many workers in one group.
    workers: int = 1
