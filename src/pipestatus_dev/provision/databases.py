"""Throw-away databases on a provisioned server: create with a fresh name, drop with force."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from pipestatus_dev.provision.services import run_sync

_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class DatabaseProvisionError(RuntimeError):
    """The server refused to create a database (the user needs CREATEDB)."""


def database_url_for(url: str, name: str) -> str:
    """``url`` with its database (the path) replaced by ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _database_name(url_or_name: str) -> str:
    name = urlsplit(url_or_name).path.lstrip("/") if "://" in url_or_name else url_or_name
    if not _DB_NAME.fullmatch(name):
        raise ValueError(f"refusing unusual database name {name!r}")
    return name


async def create_database(
    admin_url: str, *, name: str | None = None, prefix: str = "pipestatus_test"
) -> str:
    """CREATE DATABASE ``name`` (default: ``prefix`` plus a uuid) on ``admin_url``'s server."""
    name = _database_name(name or f"{prefix}_{uuid.uuid4().hex}")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.InsufficientPrivilegeError as exc:
        raise DatabaseProvisionError(
            f"cannot create database {name}: {exc} (the user needs CREATEDB)"
        ) from exc
    finally:
        await conn.close()
    return database_url_for(admin_url, name)


async def drop_database_async(admin_url: str, url_or_name: str) -> None:
    """DROP DATABASE IF EXISTS ... WITH (FORCE): lingering sessions are ended."""
    name = _database_name(url_or_name)
    if name == _database_name(admin_url):
        raise ValueError("refusing to drop the admin database itself")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def fresh_database(admin_url: str, *, prefix: str = "pipestatus_test") -> str:
    """Sync :func:`create_database` (safe to call inside a running event loop)."""
    return run_sync(lambda: create_database(admin_url, prefix=prefix))


def drop_database(admin_url: str, url_or_name: str) -> None:
    """Sync :func:`drop_database_async`."""
    run_sync(lambda: drop_database_async(admin_url, url_or_name))


@contextlib.contextmanager
def temporary_database(admin_url: str, *, prefix: str = "pipestatus_test") -> Iterator[str]:
    """A fresh database for the ``with`` block, dropped afterwards."""
    url = fresh_database(admin_url, prefix=prefix)
    try:
        yield url
    finally:
        drop_database(admin_url, url)


async def checkpoint(admin_url: str) -> None:
    """A checkpoint before each measured bench phase, so none lands in one phase by chance."""
    conn = await asyncpg.connect(admin_url)
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def polling_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection for the block (the bench polls row counts through it)."""
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()
