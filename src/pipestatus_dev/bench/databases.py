"""The bench's databases: a fresh one per consumer run, and connections that poll them."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from pipestatus_dev.bench.errors import BenchError

_DB_NAME = re.compile(r"[a-z0-9_]{1,63}")


def database_url_for(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create_database(admin_url: str, name: str) -> str:
    if not _DB_NAME.fullmatch(name):
        raise ValueError(f"unusual database name {name!r}")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.InsufficientPrivilegeError as exc:
        raise BenchError(
            f"cannot create database {name}: {exc} (the bench needs CREATEDB)"
        ) from exc
    finally:
        await conn.close()
    return database_url_for(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    if not _DB_NAME.fullmatch(name):
        raise ValueError(f"unusual database name {name!r}")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def checkpoint(admin_url: str) -> None:
    """A checkpoint before each measured phase, so none lands in one phase by chance."""
    conn = await asyncpg.connect(admin_url)
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def polling_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()
