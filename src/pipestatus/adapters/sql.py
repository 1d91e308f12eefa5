"""Small helpers shared by the SQL adapters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

#: A pooled or a plain connection: both run the same statements.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


def columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for index, value in enumerate(row):
            columns[index].append(value)
    return columns
