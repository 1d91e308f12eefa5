"""Retention: batched deletes of history nobody needs any more (docs/runbook.md, "Retention").

Each batch is its own short transaction, so pruning never holds locks a worker waits on
for long: a worker's batch inserts transitions, claims and outbox rows and updates runs,
none of which a delete of *old* rows touches. What is kept, whatever its age: every run
row (its latest state), the newest transition of every run, the transitions of runs that
are not terminal, open dead letters, undelivered outbox rows, alert states and offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pipestatus.adapters.postgres import PgStore, map_pg_errors
from pipestatus.domain.states import TERMINAL

_TERMINAL_STATES: Final = sorted(state.value for state in TERMINAL)

# Each selection takes $1 = the cutoff (transitions also $2 = the terminal states); the
# delete adds the batch size as the next parameter. Transitions: old ones of terminal
# runs, except each run's newest.
_TRANSITIONS = """
    FROM run_transitions t
    JOIN runs r ON r.provider = t.provider AND r.run_id = t.run_id
    WHERE t.recorded_at < $1 AND r.state = ANY($2::text[])
      AND EXISTS (SELECT 1 FROM run_transitions n
                  WHERE n.provider = t.provider AND n.run_id = t.run_id AND n.id > t.id)
"""
_EVENTS = "FROM processed_events WHERE first_seen_at < $1"
_LETTERS = "FROM dead_letters WHERE replayed_at IS NOT NULL AND replayed_at < $1"
_OUTBOX = """
    FROM alert_outbox
    WHERE (delivered_at IS NOT NULL OR gave_up_at IS NOT NULL)
      AND COALESCE(delivered_at, gave_up_at) < $1
"""


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    key: str
    selection: str
    alias: str = ""

    @property
    def needs_states(self) -> bool:
        return "$2" in self.selection

    def count_sql(self) -> str:
        return f"SELECT count(*) {self.selection}"

    def delete_sql(self) -> str:
        column = f"{self.alias}.{self.key}" if self.alias else self.key
        limit = "$3" if self.needs_states else "$2"
        return (
            f"DELETE FROM {self.name} WHERE {self.key} IN "  # noqa: S608  # constants only
            f"(SELECT {column} {self.selection} ORDER BY {column} LIMIT {limit})"
        )


TABLES: Final = (
    _Table("run_transitions", "id", _TRANSITIONS, alias="t"),
    _Table("processed_events", "event_id", _EVENTS),
    _Table("dead_letters", "id", _LETTERS),
    _Table("alert_outbox", "id", _OUTBOX),
)

Progress = Callable[[str, int], None]


async def prune(
    store: PgStore,
    cutoff: datetime,
    *,
    batch_size: int = 5000,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Rows deleted (or, with ``dry_run``, that would be) per table, older than ``cutoff``."""
    counts: dict[str, int] = {}
    for table in TABLES:
        extra: tuple[object, ...] = (_TERMINAL_STATES,) if table.needs_states else ()
        with map_pg_errors():
            if dry_run:
                sql = table.count_sql()
                counts[table.name] = int(await store.pool.fetchval(sql, cutoff, *extra))
                continue
            total = 0
            while True:
                status = await store.pool.execute(table.delete_sql(), cutoff, *extra, batch_size)
                deleted = int(status.split()[-1])
                total += deleted
                if progress is not None and deleted:
                    progress(table.name, total)
                if deleted < batch_size:
                    break
        counts[table.name] = total
    return counts
