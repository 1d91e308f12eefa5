"""Forward-only SQL migrations shipped in the package, applied under an advisory lock."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

logger = logging.getLogger(__name__)

#: Any constant works; it only has to be the same for every pipestatus process.
_LOCK_KEY = 0x70697065_7374

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_FILE = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def shipped_migrations() -> list[Migration]:
    """The migrations in the installed package, in version order."""
    found = []
    for entry in resources.files("pipestatus.migrations").iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            found.append(
                Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
            )
    return sorted(found, key=lambda m: m.version)


async def migrate(
    connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
) -> list[Migration]:
    """Applies the pending migrations, each in its own transaction; returns those applied.

    A session advisory lock makes concurrent starts (several workers, ``pipestatus
    migrate`` during a rollout) apply each migration exactly once.
    """
    await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await connection.execute(_CREATE_LEDGER)
        done = {
            row["version"]
            for row in await connection.fetch("SELECT version FROM schema_migrations")
        }
        applied = []
        for migration in shipped_migrations():
            if migration.version in done:
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            logger.info("migration applied version=%04d name=%s", migration.version, migration.name)
            applied.append(migration)
        return applied
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
