"""In-memory fakes of the ports (``pipestatus.ports``) for unit tests of the service layer.

``FakeStore`` keeps the tables the service writes as plain values and gives each unit of
work a copy: leaving it normally commits the copy, an exception drops it, like a
transaction. It mirrors the database's own rules where the service relies on them: event
identities are claimed once, a transition is unique per run and event, a dead letter per
source offset, and stored offsets only move forward (``GREATEST``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from pipestatus.domain.alerting import AlertChange, AlertState
from pipestatus.domain.batch import BatchPlan, RunKey
from pipestatus.domain.machine import Transition
from pipestatus.domain.observation import Observation
from pipestatus.errors import UnstorableRecordError
from pipestatus.ports import DeadLetterRow, EventClaim, StoredDeadLetter, TransitionSource


@dataclass
class StoredLetter:
    """A dead-letter row: what was written, and what replay later noted on it."""

    id: int
    row: DeadLetterRow
    replay_result: str | None = None
    replayed: bool = False


@dataclass
class Tables:
    """What the service stores, one attribute per table."""

    events: dict[str, EventClaim] = field(default_factory=dict)
    runs: dict[RunKey, Observation] = field(default_factory=dict)
    transitions: list[tuple[Transition, TransitionSource | None]] = field(default_factory=list)
    dead_letters: list[StoredLetter] = field(default_factory=list)
    alerts: dict[str, AlertState] = field(default_factory=dict)
    outbox: list[tuple[str, str, str]] = field(default_factory=list)  # key, receiver, action
    offsets: dict[tuple[str, str, int], int] = field(default_factory=dict)


class FakeUnitOfWork:
    """The statements of one transaction, on a private copy of the tables."""

    def __init__(self, tables: Tables, poison: frozenset[str]) -> None:
        self.tables = tables
        self._poison = poison

    async def claim_events(self, claims: Sequence[EventClaim]) -> set[str]:
        refused = [c.event_id for c in claims if c.event_id in self._poison]
        if refused:  # as PostgreSQL refuses a value it cannot store
            raise UnstorableRecordError(f"invalid byte sequence in {refused[0]}")
        fresh = {c.event_id for c in claims if c.event_id not in self.tables.events}
        for claim in claims:
            self.tables.events.setdefault(claim.event_id, claim)
        return fresh

    async def lock_and_load_runs(self, keys: Sequence[RunKey]) -> dict[RunKey, Observation]:
        return {key: self.tables.runs[key] for key in keys if key in self.tables.runs}

    async def write_plan(self, plan: BatchPlan, sources: dict[str, TransitionSource]) -> None:
        self.tables.runs.update(plan.heads)
        seen = {_transition_key(t) for t, _ in self.tables.transitions}
        for transition in plan.transitions:
            if _transition_key(transition) not in seen:
                source = sources.get(transition.observation.event_id)
                self.tables.transitions.append((transition, source))

    async def add_dead_letters(self, letters: Sequence[DeadLetterRow]) -> None:
        taken = {(d.row.topic, d.row.partition, d.row.offset) for d in self.tables.dead_letters}
        for letter in letters:
            if (letter.topic, letter.partition, letter.offset) not in taken:
                next_id = len(self.tables.dead_letters) + 1
                self.tables.dead_letters.append(StoredLetter(next_id, letter))

    async def lock_and_load_alerts(self, keys: Sequence[str]) -> dict[str, AlertState]:
        return {key: self.tables.alerts[key] for key in keys if key in self.tables.alerts}

    async def write_alerts(self, changes: Sequence[AlertChange], receivers: Sequence[str]) -> int:
        for change in changes:
            self.tables.alerts[change.state.dedup_key] = change.state
        rows = [
            (change.state.dedup_key, receiver, change.action)
            for change in changes
            if change.action is not None
            for receiver in receivers
        ]
        self.tables.outbox.extend(rows)
        return len(rows)

    async def save_offsets(self, group_id: str, next_offsets: dict[tuple[str, int], int]) -> None:
        for (topic, partition), offset in next_offsets.items():
            key = (group_id, topic, partition)
            self.tables.offsets[key] = max(offset, self.tables.offsets.get(key, offset))

    async def open_dead_letters(
        self, ids: Sequence[int], reason: str | None
    ) -> list[StoredDeadLetter]:
        return [
            StoredDeadLetter(
                id=d.id,
                topic=d.row.topic,
                partition=d.row.partition,
                offset=d.row.offset,
                key=d.row.key,
                value=d.row.value,
                headers=d.row.headers,
            )
            for d in self.tables.dead_letters
            if not d.replayed
            and (not ids or d.id in ids)
            and (reason is None or d.row.reason == reason)
        ]

    async def mark_replayed(self, letter_id: int, result: str) -> None:
        letter = self._letter(letter_id)
        letter.replayed, letter.replay_result = True, result

    async def note_still_failing(
        self, letter_id: int, reason: str, field_path: str, message: str
    ) -> None:
        letter = self._letter(letter_id)
        letter.replay_result = "still_failing"
        letter.row = dataclasses.replace(
            letter.row, reason=reason, field_path=field_path, message=message
        )

    def _letter(self, letter_id: int) -> StoredLetter:
        [letter] = [d for d in self.tables.dead_letters if d.id == letter_id]
        return letter


class FakeStore:
    """Opens units of work on copies of ``tables``; commits by replacing them."""

    def __init__(
        self, *, poison: frozenset[str] | set[str] = frozenset(), fail_with: Exception | None = None
    ) -> None:
        self.tables = Tables()
        self.poison = frozenset(poison)
        self.fail_with = fail_with
        self.transactions = 0
        self.commits = 0

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[FakeUnitOfWork]:
        self.transactions += 1
        if self.fail_with is not None:
            raise self.fail_with
        uow = FakeUnitOfWork(copy.deepcopy(self.tables), self.poison)
        yield uow  # an exception here rolls back: the copy is dropped
        self.tables = uow.tables
        self.commits += 1


def _transition_key(transition: Transition) -> tuple[str, str, str]:
    o = transition.observation
    return (o.provider.value, o.run_id, o.event_id)
