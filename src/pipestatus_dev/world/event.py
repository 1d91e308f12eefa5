"""One provider report in a run's life, and the Kafka record that delivers it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipestatus.domain.states import Provider
from pipestatus_dev.world.formats import compact_json
from pipestatus_dev.world.records import BenchRecord, Role


@dataclass(slots=True)
class Event:
    """One provider report in a life; ``runs`` says which runs it moves where."""

    at_ms: int
    provider: Provider
    key: str
    document: Any
    #: (run id, state, attempt) for each run the event reports on.
    runs: tuple[tuple[str, str, int], ...]
    headers: tuple[tuple[str, bytes], ...] = ()

    def record(self, role: Role, life: int, step: int, late: bool) -> BenchRecord:
        value = self.document if isinstance(self.document, bytes) else compact_json(self.document)
        return BenchRecord(
            self.provider, self.key.encode(), value, self.headers, role, life, step, late
        )
