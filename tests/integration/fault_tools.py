"""Fault-injection helpers: worker subprocesses, realistic backlogs, whole-database diffs.

Used by ``test_faults.py`` (issue #7) and ``test_network_faults.py`` (issue 11). A worker
here is always the real command (``python -m pipestatus worker``) in its own process, so
SIGKILL, SIGTERM and ``/proc/<pid>/status`` mean what they mean in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from pipestatus.domain.states import Provider
from pipestatus.intake import Accepted, InboundRecord, Routing, prepare
from pipestatus.settings import DEFAULT_CLOUDEVENTS_TYPES
from pipestatus_dev.provision.databases import temporary_database
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.world import BenchRecord, Workload, generate
from tests.integration.kafka_tools import create_topics

_T = TypeVar("_T")

#: An alert receiver nobody listens on (port 9, "discard", is closed here): outbox rows
#: are written exactly as in production, each delivery fails once and then waits an hour.
DEAD_RECEIVER = [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/hook",
                  "secret": "whsec_ZmF1bHQtdGVzdHMtc2lnbmluZy1rZXktMzJieXRlcyE="}]  # fmt: skip


def run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Runs a coroutine from sync code (module fixtures) on its own loop in a thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fault-sync") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


# --------------------------------------------------------------------------- traffic


def provider_topics(prefix: str) -> dict[Provider, str]:
    """One fresh topic per provider."""
    suffix = uuid.uuid4().hex[:8]
    return {provider: f"{prefix}.{provider.value}.{suffix}" for provider in Provider}


def keyed_by_pipeline(records: Sequence[BenchRecord]) -> list[BenchRecord]:
    """The records keyed by pipeline instead of run id: one pipeline, one partition.

    Runs, transitions and dead letters converge whatever the key (a run's events share a
    partition either way). Pipeline alerts are folded in arrival order across the
    pipeline's runs, so *which notifications are sent* is only reproducible when those
    runs keep their order too - which a pipeline key guarantees. (Codat pipelines are
    ``company/connection/dataType`` and one webhook can name several: keyed by company.)
    """
    routing = Routing(
        topics={provider.value: provider for provider in Provider},
        cloudevents_type_prefixes=DEFAULT_CLOUDEVENTS_TYPES,
    )
    keys: dict[tuple[Provider, bytes, bytes], bytes] = {}  # re-deliveries: parsed once
    keyed = []
    for record in records:
        seen = (record.provider, record.key, record.value)
        if seen not in keys:
            inbound = InboundRecord(
                record.provider.value, 0, 0, record.key, record.value, record.headers
            )
            prepared = prepare(inbound, routing)
            keys[seen] = record.key
            if isinstance(prepared, Accepted) and prepared.parsed.observations:
                pipeline = min(o.pipeline_id.split("/")[0] for o in prepared.parsed.observations)
                keys[seen] = f"{record.provider.value}/{pipeline}".encode()
        keyed.append(dataclasses.replace(record, key=keys[seen]))
    return keyed


#: The top-level field ``padded`` adds: no provider model reads it.
PAD_FIELD = b"_pad"


def padded(records: Sequence[BenchRecord], size: int) -> list[BenchRecord]:
    """The records with every valid value grown to ``size`` bytes by a field nobody reads.

    The same value always grows the same way, so re-deliveries stay exact copies; invalid
    records are left as they are (their reasons must not change).
    """
    grown = []
    for record in records:
        value = record.value
        if record.role != "invalid" and value.startswith(b"{"):
            fill = b"x" * (size - len(value) - len(PAD_FIELD) - 6)
            value = b'{"' + PAD_FIELD + b'":"' + fill + b'",' + value[1:]
        grown.append(dataclasses.replace(record, value=value))
    return grown


async def produce_records(
    bootstrap: str, topics: Mapping[Provider, str], records: Sequence[BenchRecord]
) -> None:
    """Produces workload records in order, with their keys."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,  # Tansu has no InitProducerId
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
    )
    await producer.start()
    try:
        sent = [
            await producer.send(
                topics[record.provider], record.value, key=record.key, headers=list(record.headers)
            )
            for record in records
        ]
        await producer.flush()
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- workers


def worker_env(
    bootstrap: str,
    group: str,
    topics: Mapping[Provider, str],
    database_url: str,
    **extra: str,
) -> dict[str, str]:
    """The environment of a worker subprocess: only this test's PIPESTATUS_* settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIPESTATUS_")}
    env.update(
        {
            "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "PIPESTATUS_KAFKA__GROUP_ID": group,
            "PIPESTATUS_KAFKA__TOPICS": json.dumps({t: p.value for p, t in topics.items()}),
            "PIPESTATUS_KAFKA__MAX_BATCH_WAIT_MS": "100",
            "PIPESTATUS_DATABASE__URL": database_url,
            "PIPESTATUS_WORKER__IDLE_POLLS": "2",
            "PIPESTATUS_WORKER__RETRY_INITIAL_S": "0.2",
            "PIPESTATUS_WORKER__RETRY_MAX_S": "2",
            "PIPESTATUS_ALERTS__RECEIVERS": json.dumps(DEAD_RECEIVER),
            "PIPESTATUS_ALERTS__RETRY_INITIAL_S": "3600",
            "PIPESTATUS_HTTP__PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


_ASSIGNED = re.compile(r"partitions assigned count=(\d+)")
_ENDPOINT = re.compile(r"metrics and health endpoints on (http://\S+)/metrics")
_SUMMARY = re.compile(r"worker stopped (.*)$", re.MULTILINE)


@dataclass
class WorkerProcess:
    """``python -m pipestatus worker`` as a child process, its output in ``log_path``."""

    env: dict[str, str]
    log_path: Path
    until_idle: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> WorkerProcess:
        argv = [sys.executable, "-m", "pipestatus", "worker"]
        if self.until_idle:
            argv.append("--until-idle")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        return self

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None, "not started"
        return self._proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def assigned_counts(self) -> list[int]:
        """The partition counts of every assignment so far, in order."""
        return [int(n) for n in _ASSIGNED.findall(self.log())]

    def endpoint(self) -> str | None:
        found = _ENDPOINT.search(self.log())
        return found.group(1) if found else None

    def summary(self) -> dict[str, float]:
        """The ``worker stopped …`` line as numbers (after a graceful exit)."""
        found = _SUMMARY.search(self.log())
        assert found, f"no summary line in the worker log:\n{self.tail()}"
        return {k: float(v) for k, v in (pair.split("=") for pair in found.group(1).split())}

    def vm_hwm_kib(self) -> int:
        """Peak resident set size so far (``VmHWM`` in ``/proc/<pid>/status``)."""
        text = Path(f"/proc/{self.pid}/status").read_text()
        [kib] = re.findall(r"^VmHWM:\s+(\d+) kB$", text, re.MULTILINE)
        return int(kib)

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    async def wait(self, timeout_s: float) -> int:
        """Waits for the exit; returns the exit code (negative: killed by that signal)."""
        deadline = time.monotonic() + timeout_s
        while (code := self.proc.poll()) is None:
            assert time.monotonic() < deadline, f"worker still running:\n{self.tail()}"
            await asyncio.sleep(0.05)
        return code

    async def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM and wait for the graceful exit."""
        self.signal(signal.SIGTERM)
        return await self.wait(timeout_s)

    async def kill(self) -> int:
        """SIGKILL and wait; the exit code (``-9`` unless it had exited already)."""
        self.signal(signal.SIGKILL)
        return await self.wait(30)

    def ensure_dead(self) -> None:
        """For ``finally`` blocks: no worker outlives its test."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(30)


class Progress:
    """Records a consumer group has committed to PostgreSQL (sum of next offsets).

    One connection, reopened after failures (a database outage is a normal event here).
    """

    def __init__(self, url: str, group: str) -> None:
        self._url = url
        self._group = group
        self._connection: asyncpg.Connection | None = None

    async def __call__(self) -> int | None:
        """The committed count, or ``None`` while the database does not answer."""
        try:
            value = await self._fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = $1",
                self._group,
            )
        except asyncpg.UndefinedTableError:
            return 0  # the worker has not migrated yet
        return None if value is None else int(value)

    async def open_transactions(self) -> int | None:
        """Other sessions of this database inside a transaction (a worker's batch in flight)."""
        value = await self._fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND xact_start IS NOT NULL"
        )
        return None if value is None else int(value)

    async def _fetchval(self, query: str, *args: object) -> Any:
        try:
            if self._connection is None or self._connection.is_closed():
                self._connection = await asyncpg.connect(self._url, timeout=5)
            return await self._connection.fetchval(query, *args, timeout=5)
        except asyncpg.UndefinedTableError:
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            await self.close()
            return None

    async def wait_for(
        self,
        done: Callable[[int], bool],
        *,
        worker: WorkerProcess | None = None,
        within_s: float = 240,
        what: str = "progress",
    ) -> int:
        """Polls until ``done(count)``; fails if ``worker`` exits first."""
        return await self._poll(self, done, worker, within_s, what, every_s=0.05)

    async def wait_for_open_batch(self, worker: WorkerProcess, within_s: float = 60) -> int:
        """Polls until a transaction of the worker is open: a fault now hits it mid-batch."""
        return await self._poll(
            self.open_transactions,
            (0).__lt__,
            worker,
            within_s,
            "an open transaction",
            every_s=0.01,
        )

    @staticmethod
    async def _poll(
        probe: Callable[[], Awaitable[int | None]],
        done: Callable[[int], bool],
        worker: WorkerProcess | None,
        within_s: float,
        what: str,
        *,
        every_s: float,
    ) -> int:
        deadline = time.monotonic() + within_s
        while True:
            count = await probe()
            if count is not None and done(count):
                return count
            if worker is not None and worker.returncode is not None:
                raise AssertionError(
                    f"worker exited ({worker.returncode}) before {what}:\n{worker.tail()}"
                )
            if time.monotonic() > deadline:
                detail = worker.tail() if worker else ""
                raise AssertionError(f"timed out waiting for {what} (at {count})\n{detail}")
            await asyncio.sleep(every_s)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)


# --------------------------------------------------------------------------- snapshots


def _canonical(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        with contextlib.suppress(ValueError):
            return json.loads(value)  # jsonb columns arrive as text
    return value


async def _rows(
    connection: asyncpg.Connection, query: str, topics: Mapping[str, str]
) -> list[dict[str, Any]]:
    rows = []
    for record in await connection.fetch(query):
        row = {key: _canonical(value) for key, value in dict(record).items()}
        if "source_topic" in row:
            row["source_topic"] = topics.get(row["source_topic"], row["source_topic"])
        rows.append(row)
    return rows


async def full_snapshot(url: str, topics: Mapping[Provider, str]) -> dict[str, Any]:
    """Everything the events decide, with topic names replaced by provider names.

    Columns set from the wall clock (``created_at``, ``recorded_at``, an alert's
    ``started_at`` …) and delivery bookkeeping are left out; the order of each run's
    transitions and of each alert's outbox rows is kept.
    """
    aliases = {topic: f"<{provider.value}>" for provider, topic in topics.items()}
    connection = await asyncpg.connect(url)
    try:
        return {
            "runs": await _rows(
                connection,
                "SELECT provider, run_id, pipeline_id, attempt, state, phase, phase_rank,"
                " provider_status, occurred_at, error_category, error_message, retryable,"
                " warnings, counters, kind, event_id, started_at, ended_at"
                " FROM runs ORDER BY provider, run_id",
                aliases,
            ),
            "transitions": await _rows(
                connection,
                "SELECT provider, run_id, pipeline_id, from_state, to_state, from_phase,"
                " to_phase, from_attempt, attempt, provider_status, error_category,"
                " error_message, retryable, event_id, occurred_at, source_topic,"
                " source_partition, source_offset"
                " FROM run_transitions ORDER BY provider, run_id, id",
                aliases,
            ),
            "events": await _rows(
                connection,
                "SELECT event_id, provider, source_topic, source_partition, source_offset"
                " FROM processed_events ORDER BY event_id",
                aliases,
            ),
            "dead_letters": await _rows(
                connection,
                "SELECT provider, source_topic, source_partition, source_offset, record_key,"
                " raw_value, value_size, value_sha256, value_truncated, headers, stage, reason,"
                " field_path, message FROM dead_letters"
                " ORDER BY source_topic, source_partition, source_offset",
                aliases,
            ),
            "alert_state": await _rows(
                connection,
                # not last_success_at/last_failure_at: a run without a provider time
                # falls back to the wall clock there
                "SELECT dedup_key, rule, provider, pipeline_id, run_id, status,"
                " consecutive_failures, labels, annotations FROM alert_state ORDER BY dedup_key",
                aliases,
            ),
            "alert_outbox": await _rows(
                connection,
                "SELECT dedup_key, receiver, action, payload->'labels' AS labels,"
                " payload->'annotations' AS annotations"
                " FROM alert_outbox ORDER BY dedup_key, receiver, id",
                aliases,
            ),
        }
    finally:
        await connection.close()


@dataclass(frozen=True)
class Diff:
    """Rows of a run that an undisturbed run does not have, and the reverse, per table."""

    lost: dict[str, int]
    duplicated: dict[str, int]
    counts: dict[str, int]
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(self.lost.values()) and not any(self.duplicated.values())


def diff(expected: Mapping[str, list[dict[str, Any]]], actual: Mapping[str, Any]) -> Diff:
    lost, duplicated, examples = {}, {}, []
    for table, rows in expected.items():
        want = Counter(json.dumps(row, sort_keys=True, default=str) for row in rows)
        got = Counter(json.dumps(row, sort_keys=True, default=str) for row in actual[table])
        missing, extra = want - got, got - want
        lost[table] = sum(missing.values())
        duplicated[table] = sum(extra.values())
        examples += [f"{table} lost: {row}" for row in sorted(missing)[:2]]
        examples += [f"{table} extra: {row}" for row in sorted(extra)[:2]]
    counts = {table: len(rows) for table, rows in actual.items()}
    return Diff(lost, duplicated, counts, examples)


def assert_same_state(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> Diff:
    """Equal as multisets (nothing lost or duplicated) and in order (per run, per alert)."""
    difference = diff(expected, actual)
    assert difference.clean, (
        f"lost {difference.lost}, duplicated {difference.duplicated}, e.g.\n"
        + "\n".join(difference.examples)
    )
    for table in expected:
        assert actual[table] == expected[table], f"{table}: same rows, different order"
    return difference


def check_against_workload(
    workload: Workload, snapshot: Mapping[str, Any], more_reasons: Counter[str] | None = None
) -> None:
    """The run itself is right: every run's final state, every bad record's reason.

    ``more_reasons``: dead letters expected beyond the workload's own invalid records.
    """
    final = {(r["provider"], r["run_id"]): (r["state"], r["attempt"]) for r in snapshot["runs"]}
    expected = {key: (run.state, run.attempt) for key, run in workload.expected.items()}
    assert final == expected
    reasons = Counter(r["reason"] for r in snapshot["dead_letters"])
    assert reasons == Counter(workload.summary()["invalid_reasons"]) + (more_reasons or Counter())
    assert snapshot["alert_outbox"], "the workload must exercise the alert outbox too"


def report(name: str, **facts: Any) -> None:
    """One greppable line per fault scenario (docs/reliability.md quotes these)."""
    print(f"\nRELIABILITY {name} " + json.dumps(facts, sort_keys=True, default=str))


# --------------------------------------------------------------------------- baselines

PARTITIONS = 6


@dataclass(frozen=True)
class Backlog:
    """A produced workload and what an undisturbed worker made of it."""

    workload: Workload
    records: list[BenchRecord]
    topics: dict[Provider, str]
    baseline: dict[str, Any]
    peak_kib: int
    drain_s: float

    @property
    def total(self) -> int:
        return len(self.records)


def drain_baseline(services: TestServices, logs: Path, events: int, seed: int) -> Iterator[Backlog]:
    """Produces ``events`` records on fresh topics of ``PARTITIONS`` partitions, drains them
    with one undisturbed worker subprocess; yields them with its database (module fixtures)."""
    workload = generate(events, seed)
    records = keyed_by_pipeline(workload.records)
    topics = provider_topics(f"faults{events}")
    run_sync(lambda: create_topics(services.kafka_bootstrap, topics.values(), PARTITIONS))
    run_sync(lambda: produce_records(services.kafka_bootstrap, topics, records))
    with temporary_database(services.database_url, prefix="pipestatus_baseline") as url:
        group = f"baseline-{uuid.uuid4().hex[:8]}"
        worker = WorkerProcess(
            worker_env(services.kafka_bootstrap, group, topics, url), logs / "baseline.log"
        )

        async def drain() -> tuple[int, float]:
            progress = Progress(url, group)
            began = time.monotonic()
            try:
                await progress.wait_for(
                    lambda n: n == events, worker=worker, within_s=600, what="the baseline"
                )
                seconds = time.monotonic() - began
                peak = worker.vm_hwm_kib()  # read before exit: the drain's own peak
                assert await worker.stop() == 0, worker.tail()
            finally:
                await progress.close()
            return peak, seconds

        worker.start()
        try:
            peak, seconds = run_sync(drain)
        finally:
            worker.ensure_dead()
        baseline = run_sync(lambda: full_snapshot(url, topics))
        check_against_workload(workload, baseline)
        yield Backlog(workload, records, topics, baseline, peak, seconds)


def facts(backlog: Backlog, state: dict[str, Any]) -> dict[str, Any]:
    """The counts every RELIABILITY line starts with."""
    return {
        "records": backlog.total,
        "invalid": backlog.workload.summary()["invalid"],
        "duplicates_injected": backlog.workload.summary()["duplicate"],
        "reordered_injected": backlog.workload.summary()["late"],
        "rows": {table: len(rows) for table, rows in state.items()},
    }


# --------------------------------------------------------------------------- endpoints


async def metric(endpoint: str, line_prefix: str) -> float:
    """The sum of the samples on ``/metrics`` whose line starts with ``line_prefix``."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{endpoint}/metrics")).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(line_prefix)]  # fmt: skip
    return sum(values)


async def status(endpoint: str, path: str) -> tuple[int, str]:
    """Status code and body of ``GET endpoint+path``."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{endpoint}{path}")
    return response.status_code, response.text
