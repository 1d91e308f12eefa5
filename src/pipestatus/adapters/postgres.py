"""PostgreSQL through asyncpg: the pool, error translation and the batch unit of work.

Every statement takes whole arrays (``unnest``), so a batch costs the same handful of
round trips whatever its size. SQL lives here as constants with ``$n`` parameters only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Self

import asyncpg
import asyncpg.exceptions._base as asyncpg_base

from pipestatus.adapters import alert_store
from pipestatus.adapters.alert_store import OutboxStatements
from pipestatus.adapters.lifecycle import AsyncClosing
from pipestatus.adapters.migrate import migrate
from pipestatus.adapters.replay_store import ReplayStatements
from pipestatus.adapters.rows import row_to_observation
from pipestatus.adapters.sql import Connection, columns
from pipestatus.adapters.sweep_store import SweepStatements
from pipestatus.domain.alerting import AlertChange, AlertState
from pipestatus.domain.batch import BatchPlan, RunKey
from pipestatus.domain.machine import Transition
from pipestatus.domain.observation import Observation
from pipestatus.domain.states import Provider
from pipestatus.errors import StoreUnavailableError, UnstorableRecordError
from pipestatus.ports import DeadLetterRow, EventClaim, TransitionSource

logger = logging.getLogger(__name__)


_CLAIM_EVENTS = """
INSERT INTO processed_events (event_id, provider, source_topic, source_partition, source_offset)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
# Serializes workers on the same runs (producers may not key by run id); sorted, so
# two transactions always lock in the same order and cannot deadlock.
_LOCK_RUNS = """
SELECT pg_advisory_xact_lock(k)
FROM (SELECT DISTINCT hashtextextended(p || '/' || r, 0) AS k
      FROM unnest($1::text[], $2::text[]) AS t(p, r)) AS keys
ORDER BY k
"""
_LOAD_RUNS = """
SELECT r.* FROM runs r
JOIN unnest($1::text[], $2::text[]) AS t(p, r_id) ON r.provider = t.p AND r.run_id = t.r_id
"""
_UPSERT_RUNS = """
INSERT INTO runs (provider, run_id, pipeline_id, attempt, state, phase, phase_rank,
                  provider_status, occurred_at, error_category, error_message, retryable,
                  warnings, counters, kind, event_id, started_at, ended_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                     $7::int[], $8::text[], $9::timestamptz[], $10::text[], $11::text[],
                     $12::bool[], $13::jsonb[], $14::jsonb[], $15::text[], $16::text[],
                     $17::timestamptz[], $18::timestamptz[])
ON CONFLICT (provider, run_id) DO UPDATE SET
    pipeline_id = EXCLUDED.pipeline_id, attempt = EXCLUDED.attempt, state = EXCLUDED.state,
    phase = EXCLUDED.phase, phase_rank = EXCLUDED.phase_rank,
    provider_status = EXCLUDED.provider_status, occurred_at = EXCLUDED.occurred_at,
    error_category = EXCLUDED.error_category, error_message = EXCLUDED.error_message,
    retryable = EXCLUDED.retryable, warnings = EXCLUDED.warnings,
    counters = EXCLUDED.counters, kind = EXCLUDED.kind, event_id = EXCLUDED.event_id,
    started_at = COALESCE(EXCLUDED.started_at, runs.started_at),
    ended_at = EXCLUDED.ended_at, updated_at = now(),
    progressed_at = CASE
        WHEN (runs.attempt, runs.state, runs.phase)
             IS DISTINCT FROM (EXCLUDED.attempt, EXCLUDED.state, EXCLUDED.phase)
        THEN now() ELSE runs.progressed_at END
"""
_INSERT_TRANSITIONS = """
INSERT INTO run_transitions (provider, run_id, pipeline_id, from_state, to_state, from_phase,
                             to_phase, from_attempt, attempt, provider_status, error_category,
                             error_message, retryable, event_id, occurred_at, source_topic,
                             source_partition, source_offset)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::int[], $9::int[], $10::text[], $11::text[], $12::text[],
                     $13::bool[], $14::text[], $15::timestamptz[], $16::text[], $17::int[],
                     $18::bigint[])
ON CONFLICT (provider, run_id, event_id) DO NOTHING
"""
_INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (provider, source_topic, source_partition, source_offset, record_key,
                          raw_value, value_size, value_sha256, value_truncated, headers, stage,
                          reason, field_path, message)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bytea[], $6::bytea[],
                     $7::int[], $8::text[], $9::bool[], $10::jsonb[], $11::text[], $12::text[],
                     $13::text[], $14::text[])
ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING
"""
_SAVE_OFFSETS = """
INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])
ON CONFLICT (group_id, topic, partition) DO UPDATE
SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()
"""
_LOAD_OFFSETS = """
SELECT topic, partition, next_offset FROM consumer_offsets
WHERE group_id = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))
"""

#: SQLSTATE classes a retry can fix: connection exceptions, insufficient resources,
#: operator intervention (admin shutdown, cannot connect now), serialization failures, and
#: a session the server ended for idling in its transaction (25P03: the worker was frozen).
_RETRIABLE_SQLSTATE_PREFIXES = ("08", "53", "57P", "40", "25P03")
#: SQLSTATE class 22, data exception: a value the database refuses (NUL in text, an
#: integer out of range, an invalid escape in jsonb …). Retrying the same batch cannot help.
_DATA_EXCEPTION_CLASS = "22"


@contextlib.contextmanager
def map_pg_errors() -> Iterator[None]:
    """Translates driver errors: retriable ones into ``StoreUnavailableError``, refused
    values (server- or client-side) into ``UnstorableRecordError``; others pass through."""
    try:
        yield
    except asyncpg_base.DataError as exc:
        # Client side: an argument the codec cannot encode (an int beyond int32, a lone
        # surrogate in a str). An InterfaceError subclass, so it must be caught first.
        raise UnstorableRecordError(str(exc)) from exc
    except (OSError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise StoreUnavailableError(f"PostgreSQL unreachable: {exc}") from exc
    except asyncpg.exceptions.InternalClientError as exc:
        # The server went away mid-statement and the protocol was still consuming its error
        # when the transaction tried to roll back ("cannot switch to state …"): the
        # connection is dead, and a retry on a fresh one is the remedy.
        raise StoreUnavailableError(f"PostgreSQL connection broke: {exc}") from exc
    except asyncpg.PostgresError as exc:
        state = getattr(exc, "sqlstate", "") or ""
        if state.startswith(_RETRIABLE_SQLSTATE_PREFIXES):
            raise StoreUnavailableError(f"PostgreSQL failed transiently ({state}): {exc}") from exc
        if state.startswith(_DATA_EXCEPTION_CLASS) or isinstance(exc, asyncpg.DataError):
            raise UnstorableRecordError(f"{exc} (SQLSTATE {state})") from exc
        raise


class PgStore(AsyncClosing):
    """The pool, opened as an async context manager; closing twice is harmless."""

    def __init__(
        self,
        url: str,
        *,
        max_size: int = 4,
        connect_timeout_s: float = 10.0,
        idle_in_transaction_timeout_s: float = 0.0,
    ) -> None:
        """``idle_in_transaction_timeout_s`` (0: none): PostgreSQL ends a session of this
        pool that idles that long inside a transaction, so a frozen process (a zombie)
        cannot hold its batch's locks against the other workers until it thaws."""
        self._url = url
        self._max_size = max_size
        self._timeout = connect_timeout_s
        self._idle_in_transaction_ms = round(idle_in_transaction_timeout_s * 1000)
        self._pool: asyncpg.Pool | None = None
        self._closed = False

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PgStore is not open")
        return self._pool

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError("PgStore cannot be reopened")
        with map_pg_errors():
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=1,
                max_size=self._max_size,
                timeout=self._timeout,
                command_timeout=60,
                server_settings={
                    "idle_in_transaction_session_timeout": str(self._idle_in_transaction_ms)
                },
            )
        return self

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            try:
                await _close_pool(self._pool)
            finally:
                self._pool = None

    async def migrate(self) -> int:
        with map_pg_errors():
            async with self.pool.acquire() as connection:
                return len(await migrate(connection))

    async def ping(self) -> bool:
        try:
            with map_pg_errors():
                await self.pool.fetchval("SELECT 1", timeout=2)
        except StoreUnavailableError:
            return False
        return True

    async def load_offsets(
        self, group_id: str, partitions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        with map_pg_errors():
            rows = await self.pool.fetch(
                _LOAD_OFFSETS, group_id, [t for t, _ in partitions], [p for _, p in partitions]
            )
        return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[PgUnitOfWork]:
        """One transaction; everything written through it commits or rolls back together."""
        with map_pg_errors():
            async with self.pool.acquire() as connection, connection.transaction():
                yield PgUnitOfWork(connection)


async def _close_pool(pool: asyncpg.Pool, timeout_s: float = 10.0) -> None:
    """Closes gracefully within ``timeout_s``, else terminates the connections."""
    try:
        async with asyncio.timeout(timeout_s):
            await pool.close()
    except TimeoutError:
        logger.warning("database pool did not close in %.0fs; terminating", timeout_s)
        pool.terminate()


class PgUnitOfWork(OutboxStatements, SweepStatements, ReplayStatements):
    """The statements of one transaction on one connection: a batch's (the ``UnitOfWork``
    port), and the dispatcher's, the sweep's and dead-letter replay's (the mixins)."""

    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def claim_events(self, claims: Sequence[EventClaim]) -> set[str]:
        """Records the identities; returns those never seen before."""
        if not claims:
            return set()
        rows = await self._db.fetch(
            _CLAIM_EVENTS,
            [c.event_id for c in claims],
            [c.provider for c in claims],
            [c.topic for c in claims],
            [c.partition for c in claims],
            [c.offset for c in claims],
        )
        return {row["event_id"] for row in rows}

    async def lock_and_load_runs(self, keys: Sequence[RunKey]) -> dict[RunKey, Observation]:
        if not keys:
            return {}
        providers, run_ids = [p.value for p, _ in keys], [r for _, r in keys]
        await self._db.execute(_LOCK_RUNS, providers, run_ids)
        rows = await self._db.fetch(_LOAD_RUNS, providers, run_ids)
        return {(Provider(row["provider"]), row["run_id"]): row_to_observation(row) for row in rows}

    async def write_plan(self, plan: BatchPlan, sources: dict[str, TransitionSource]) -> None:
        """Upserts the runs' new maxima and appends the transitions."""
        if plan.heads:
            await self._db.execute(
                _UPSERT_RUNS, *columns([_run_row(o) for o in plan.heads.values()], 18)
            )
        if plan.transitions:
            rows = [
                _transition_row(t, sources.get(t.observation.event_id)) for t in plan.transitions
            ]
            await self._db.execute(_INSERT_TRANSITIONS, *columns(rows, 18))

    async def add_dead_letters(self, letters: Sequence[DeadLetterRow]) -> None:
        if not letters:
            return
        rows = [
            (
                d.provider,
                d.topic,
                d.partition,
                d.offset,
                d.key,
                d.value,
                d.value_size,
                d.value_sha256,
                d.truncated,
                json.dumps(d.headers),
                d.stage,
                d.reason,
                d.field_path,
                d.message,
            )
            for d in letters
        ]
        await self._db.execute(_INSERT_DEAD_LETTERS, *columns(rows, 14))

    async def save_offsets(self, group_id: str, next_offsets: dict[tuple[str, int], int]) -> None:
        if not next_offsets:
            return
        items = sorted(next_offsets.items())
        await self._db.execute(
            _SAVE_OFFSETS,
            group_id,
            [t for (t, _), _ in items],
            [p for (_, p), _ in items],
            [o for _, o in items],
        )

    async def lock_and_load_alerts(self, keys: Sequence[str]) -> dict[str, AlertState]:
        return await alert_store.lock_and_load(self._db, keys)

    async def write_alerts(
        self,
        changes: Sequence[AlertChange],
        receivers: Sequence[str],
        now: datetime | None = None,
    ) -> int:
        return await alert_store.write(self._db, changes, receivers, now or datetime.now(UTC))


def _run_row(o: Observation) -> tuple[Any, ...]:
    return (
        o.provider.value, o.run_id, o.pipeline_id, o.attempt, o.state.value, o.phase,
        o.phase_rank, o.provider_status, o.occurred_at,
        o.error_category.value if o.error_category else None, o.error_message, o.retryable,
        json.dumps(list(o.warnings)), json.dumps(o.counters.as_dict()), o.kind, o.event_id,
        o.started_at, o.ended_at,
    )  # fmt: skip


def _transition_row(t: Transition, source: TransitionSource | None) -> tuple[Any, ...]:
    o = t.observation
    return (
        o.provider.value, o.run_id, o.pipeline_id,
        t.from_state.value if t.from_state else None, o.state.value, t.from_phase, o.phase,
        t.from_attempt, o.attempt, o.provider_status,
        o.error_category.value if o.error_category else None, o.error_message, o.retryable,
        o.event_id, o.occurred_at,
        source.topic if source else None,
        source.partition if source else None,
        source.offset if source else None,
    )  # fmt: skip
