"""The pollers' state in PostgreSQL (table ``poll_runs``) and the per-source lock.

The lock is a session advisory lock taken with ``pg_try_advisory_lock`` on a connection
held for the whole poll of one source, so two replicas never poll one source at once: the
second sees the lock taken and skips the round. A replica that dies loses its session and
with it the lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

import asyncpg

from pipestatus.adapters.postgres import map_pg_errors
from pipestatus.edge.polling import Known

#: First key of the two-key advisory lock: "poll" in ASCII; the second is the source's hash.
_LOCK_CLASS = 0x706F6C6C

_LOAD = "SELECT run_id, fingerprint, ended_seen_at, locator FROM poll_runs WHERE source = $1"
_SAVE = """
INSERT INTO poll_runs (source, run_id, fingerprint, ended_seen_at, locator)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (source, run_id) DO UPDATE
SET fingerprint = EXCLUDED.fingerprint, ended_seen_at = EXCLUDED.ended_seen_at,
    locator = EXCLUDED.locator, updated_at = now()
"""
_FORGET = "DELETE FROM poll_runs WHERE source = $1 AND run_id = ANY($2::text[])"


class PollState:
    """One source's rows, read and written on the connection that holds its lock."""

    def __init__(self, connection: asyncpg.pool.PoolConnectionProxy, source: str) -> None:
        self._connection = connection
        self._source = source

    async def load(self) -> dict[str, Known]:
        with map_pg_errors():
            rows = await self._connection.fetch(_LOAD, self._source)
        return {
            row["run_id"]: Known(
                row["run_id"], row["fingerprint"], row["ended_seen_at"], row["locator"]
            )
            for row in rows
        }

    async def save(self, run: Known) -> None:
        with map_pg_errors():
            await self._connection.execute(
                _SAVE, self._source, run.run_id, run.fingerprint, run.ended_seen_at, run.locator
            )

    async def forget(self, run_ids: Iterable[str]) -> None:
        ids = list(run_ids)
        if ids:
            with map_pg_errors():
                await self._connection.execute(_FORGET, self._source, ids)


@contextlib.asynccontextmanager
async def locked_source(pool: asyncpg.Pool, source: str) -> AsyncIterator[PollState | None]:
    """The source's state while this process holds its lock; ``None`` if another does."""
    with map_pg_errors():
        connection = await pool.acquire()
    try:
        with map_pg_errors():
            taken = await connection.fetchval(
                "SELECT pg_try_advisory_lock($1, hashtext($2))", _LOCK_CLASS, source
            )
        if not taken:
            yield None
            return
        try:
            yield PollState(connection, source)
        finally:
            # a broken connection has lost its session, and the lock with it
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await connection.execute(
                    "SELECT pg_advisory_unlock($1, hashtext($2))", _LOCK_CLASS, source
                )
    finally:
        await pool.release(connection)
