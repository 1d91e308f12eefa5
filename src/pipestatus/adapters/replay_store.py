"""Dead-letter replay's statements (a mixin of ``PgUnitOfWork``; the use case is
``pipestatus.replay``). Open letters are locked ``FOR UPDATE SKIP LOCKED``, so two replays
never take the same letter."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pipestatus.adapters.sql import Connection
from pipestatus.ports import StoredDeadLetter

_OPEN_DEAD_LETTERS = """
SELECT id, source_topic, source_partition, source_offset, record_key, raw_value, headers
FROM dead_letters
WHERE replayed_at IS NULL
  AND (cardinality($1::bigint[]) = 0 OR id = ANY($1))
  AND ($2::text IS NULL OR reason = $2)
ORDER BY id
FOR UPDATE SKIP LOCKED
"""
_MARK_REPLAYED = """
UPDATE dead_letters SET replayed_at = now(), replay_result = $2 WHERE id = $1
"""
_NOTE_STILL_FAILING = """
UPDATE dead_letters SET replay_result = 'still_failing', reason = $2, field_path = $3,
                        message = $4
WHERE id = $1
"""


class ReplayStatements:
    """Replay's statements, on the unit of work's connection (``_db``)."""

    _db: Connection

    async def open_dead_letters(
        self, ids: Sequence[int], reason: str | None
    ) -> list[StoredDeadLetter]:
        """Letters not yet replayed (all, or those ``ids``), optionally of one ``reason``."""
        rows = await self._db.fetch(_OPEN_DEAD_LETTERS, list(ids), reason)
        return [
            StoredDeadLetter(
                id=row["id"],
                topic=row["source_topic"],
                partition=row["source_partition"],
                offset=row["source_offset"],
                key=row["record_key"],
                value=row["raw_value"],
                headers=json.loads(row["headers"]),
            )
            for row in rows
        ]

    async def mark_replayed(self, letter_id: int, result: str) -> None:
        await self._db.execute(_MARK_REPLAYED, letter_id, result)

    async def note_still_failing(
        self, letter_id: int, reason: str, field_path: str, message: str
    ) -> None:
        await self._db.execute(_NOTE_STILL_FAILING, letter_id, reason, field_path, message)
