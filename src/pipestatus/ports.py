"""The shell's interfaces as the service sees them (structural, so fakes need no base class)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from pipestatus.domain.alerting import AlertChange, AlertState
from pipestatus.domain.batch import BatchPlan, RunKey
from pipestatus.domain.observation import Observation


@dataclass(frozen=True, slots=True)
class EventClaim:
    """An event identity and where it was read."""

    event_id: str
    provider: str
    topic: str | None
    partition: int | None
    offset: int | None


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    provider: str | None
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    value_size: int
    value_sha256: str
    truncated: bool
    headers: list[dict[str, str]]
    stage: str
    reason: str
    field_path: str
    message: str


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """An open dead letter as replay reads it back: the record as the broker gave it."""

    id: int
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class TransitionSource:
    topic: str | None
    partition: int | None
    offset: int | None


class UnitOfWork(Protocol):
    """The statements of one batch, committed or rolled back together."""

    async def claim_events(self, claims: Sequence[EventClaim]) -> set[str]: ...
    async def lock_and_load_runs(self, keys: Sequence[RunKey]) -> dict[RunKey, Observation]: ...
    async def write_plan(self, plan: BatchPlan, sources: dict[str, TransitionSource]) -> None: ...
    async def add_dead_letters(self, letters: Sequence[DeadLetterRow]) -> None: ...
    async def lock_and_load_alerts(self, keys: Sequence[str]) -> dict[str, AlertState]: ...
    async def write_alerts(
        self, changes: Sequence[AlertChange], receivers: Sequence[str]
    ) -> int: ...
    async def save_offsets(
        self, group_id: str, next_offsets: dict[tuple[str, int], int]
    ) -> None: ...


class Store(Protocol):
    """Opens units of work."""

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...


class ReplayUnitOfWork(UnitOfWork, Protocol):
    """A batch's statements plus those of dead-letter replay, in one transaction."""

    async def open_dead_letters(
        self, ids: Sequence[int], reason: str | None
    ) -> list[StoredDeadLetter]: ...
    async def mark_replayed(self, letter_id: int, result: str) -> None: ...
    async def note_still_failing(
        self, letter_id: int, reason: str, field_path: str, message: str
    ) -> None: ...


class ReplayStore(Protocol):
    """Opens units of work that can replay dead letters."""

    def unit_of_work(self) -> AbstractAsyncContextManager[ReplayUnitOfWork]: ...
