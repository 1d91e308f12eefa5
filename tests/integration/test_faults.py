"""Faults on real services with real worker processes (issue #7, DESIGN §10).

Every scenario drains a realistic mixed backlog (``pipestatus_dev.world``: all four
providers, 15 % duplicates, 10 % reordered, 1 % invalid) and ends with the database equal,
table by table, to that of an undisturbed worker on the same records: runs, transitions
(in order per run), processed events, dead letters, alert state and alert outbox.

- crash loop: five SIGKILLs at random points of a 100 000-record backlog, restarts;
- database outage: PostgreSQL down ~10 s mid-run; the worker stays up, reports unready,
  retries, resumes;
- rebalance: two workers in one group on 6-partition topics, one joining late and one
  leaving mid-run, gracefully (SIGTERM) and abruptly (SIGKILL);
- zombie: a worker SIGSTOPped past its session timeout while another takes over, then
  resumed: stored offsets never move backwards;
- backpressure: peak memory (VmHWM) draining N vs 5N records of 60 KB stays bounded.

Receiver outages are covered in ``test_receivers.py`` (the dispatcher) and
``test_receiver_outage.py`` (a worker process), poison floods in ``test_poison_flood.py``.
Each scenario prints one ``RELIABILITY`` line with its counts (``pytest -s``);
docs/reliability.md quotes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from pipestatus.domain.states import Provider
from pipestatus_dev.embedded import EmbeddedPostgres
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.world import generate
from tests.integration.fault_tools import (
    PARTITIONS,
    Backlog,
    Progress,
    WorkerProcess,
    assert_same_state,
    check_against_workload,
    drain_baseline,
    facts,
    full_snapshot,
    keyed_by_pipeline,
    metric,
    padded,
    produce_records,
    provider_topics,
    report,
    status,
    worker_env,
)
from tests.integration.kafka_tools import create_topics

pytestmark = [pytest.mark.services, pytest.mark.slow]

LARGE = 100_000
CRASH_SEED = 20260707
#: The memory test: N and 5N records of this size (the re-delivery memo keeps values up
#: to 64 KiB), and how far the peak for 5N may exceed the peak for N.
LARGE_RECORD_BYTES = 60_000
#: The zombie test: how long PostgreSQL lets a frozen worker's transaction idle (default 30).
IDLE_IN_TRANSACTION_S = 3
MEMORY_RECORDS = 700
MEMORY_SLACK_MIB = 40


@pytest.fixture(scope="module")
def large(services: TestServices, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backlog]:
    yield from drain_baseline(services, tmp_path_factory.mktemp("large"), LARGE, seed=7)


# --------------------------------------------------------------------------- crash loop


@pytest.mark.timeout(1200)
async def test_crash_loop_five_sigkills_on_a_100k_backlog_equals_an_undisturbed_run(
    services: TestServices, large: Backlog, database_url: str, tmp_path: Path
) -> None:
    """SIGKILL at five random points, restart each time: nothing lost, nothing twice."""
    group = f"crashloop-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        services.kafka_bootstrap,
        group,
        large.topics,
        database_url,
        PIPESTATUS_KAFKA__MAX_BATCH_RECORDS="1000",
    )
    rng = random.Random(CRASH_SEED)
    # one kill point drawn at random in each fifth-ish of the backlog
    strata = [(0.05, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.75), (0.75, 0.9)]
    fractions = [rng.uniform(low, high) for low, high in strata]
    progress = Progress(database_url, group)
    kills: list[dict[str, int]] = []
    try:
        for life, fraction in enumerate(fractions, 1):
            worker = WorkerProcess(env, tmp_path / f"life-{life}.log").start()
            try:
                began = await progress() or 0
                target = max(round(fraction * large.total), began + 1)
                await progress.wait_for(
                    target.__le__,
                    worker=worker,
                    what=f"kill point {life}",
                )
                await asyncio.sleep(rng.uniform(0.0, 0.5))  # anywhere in the next batch
                assert worker.returncode is None, worker.tail()
            finally:
                code = await worker.kill()
            assert code == -9, worker.tail()
            committed = await progress()
            assert committed is not None
            kills.append({"life": life, "target": target, "committed": committed})
        resume_at = kills[-1]["committed"]
        final = WorkerProcess(env, tmp_path / "final.log", until_idle=True).start()
        try:
            assert await final.wait(600) == 0, final.tail()
        finally:
            final.ensure_dead()
        assert await progress() == large.total
    finally:
        await progress.close()

    points = [kill["committed"] for kill in kills]
    assert points == sorted(points)
    assert all(0 < point < large.total for point in points), points
    summary = final.summary()
    # The restarted worker resumed from the offsets committed with the data: it read at
    # least what was left and, with a single assignment, exactly that (nothing re-read).
    assert summary["records"] >= large.total - resume_at
    if len(final.assigned_counts()) == 1:
        assert summary["records"] == large.total - resume_at

    state = await full_snapshot(database_url, large.topics)
    difference = assert_same_state(large.baseline, state)
    report(
        "crash_loop",
        **facts(large, state),
        kills=kills,
        final_worker_records=summary["records"],
        lost=sum(difference.lost.values()),
        duplicated=sum(difference.duplicated.values()),
    )


# --------------------------------------------------------------------------- database outage


@pytest.mark.timeout(600)
async def test_database_outage_of_ten_seconds_mid_run(
    services: TestServices, small: Backlog, tmp_path: Path
) -> None:
    """PostgreSQL stopped for ~10 s mid-backlog: unready, retrying, alive; then complete."""
    group = f"outage-{uuid.uuid4().hex[:8]}"
    async with EmbeddedPostgres() as database:
        env = worker_env(
            services.kafka_bootstrap,
            group,
            small.topics,
            database.dsn,
            PIPESTATUS_KAFKA__MAX_BATCH_RECORDS="500",
        )
        progress = Progress(database.dsn, group)
        worker = WorkerProcess(env, tmp_path / "worker.log").start()
        try:
            at_outage = await progress.wait_for(
                lambda n: n > 0, worker=worker, what="the first committed batch"
            )
            await asyncio.to_thread(database.interrupt)
            down_at = time.monotonic()
            endpoint = worker.endpoint()
            assert endpoint is not None, worker.tail()

            async def unready() -> bool:
                code, body = await status(endpoint, "/readyz")
                return code == 503 and "database unreachable" in body

            while not await unready():
                assert time.monotonic() - down_at < 60, "/readyz never reported the outage"
                await asyncio.sleep(0.2)
            retries_prefix = 'pipestatus_dependency_retries_total{dependency="database"}'
            while time.monotonic() - down_at < 10:
                assert worker.returncode is None, worker.tail()
                assert (await status(endpoint, "/healthz"))[0] == 200
                assert await unready()
                await asyncio.sleep(0.5)
            retries_during = await metric(endpoint, retries_prefix)
            assert retries_during > 0
            assert await metric(endpoint, "pipestatus_database_up ") == 0
            outage_s = time.monotonic() - down_at
            await asyncio.to_thread(database.resume)

            await progress.wait_for(
                lambda n: n == small.total, worker=worker, what="catching up after the outage"
            )
            deadline = time.monotonic() + 60
            while (await status(endpoint, "/readyz"))[0] != 200:
                assert time.monotonic() < deadline, "/readyz never recovered"
                await asyncio.sleep(0.2)
            retries = await metric(endpoint, retries_prefix)
            assert await worker.stop() == 0, worker.tail()
        finally:
            worker.ensure_dead()
            await progress.close()
        summary = worker.summary()
        assert summary["records"] == small.total  # the failed batch counted once, when committed
        assert summary["retries"] >= retries
        state = await full_snapshot(database.dsn, small.topics)
    assert 0 < at_outage < small.total
    difference = assert_same_state(small.baseline, state)
    report(
        "database_outage",
        **facts(small, state),
        committed_before_outage=at_outage,
        outage_seconds=round(outage_s, 1),
        database_retries=retries,
        lost=sum(difference.lost.values()),
        duplicated=sum(difference.duplicated.values()),
    )


async def _shared_group(
    services: TestServices,
    backlog: Backlog,
    database_url: str,
    name: str,
    shares: tuple[float, ...],
    **extra: str,
) -> tuple[dict[Provider, str], list[int], str, dict[str, str]]:
    """Fresh topics with the backlog's first part produced, the cut points of its other
    parts (``shares`` of it), and a group and worker environment for several workers."""
    topics = provider_topics(name)
    await create_topics(services.kafka_bootstrap, topics.values(), PARTITIONS)
    cuts = [round(share * backlog.total) for share in shares]
    await produce_records(services.kafka_bootstrap, topics, backlog.records[: cuts[0]])
    group = f"{name}-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        services.kafka_bootstrap,
        group,
        topics,
        database_url,
        PIPESTATUS_KAFKA__MAX_BATCH_RECORDS="500",
        **extra,
    )
    return topics, cuts, group, env


# --------------------------------------------------------------------------- rebalance


@pytest.mark.timeout(600)
@pytest.mark.parametrize("leaving", ["SIGTERM", "SIGKILL"])
async def test_rebalance_late_joiner_and_leaver_equal_an_undisturbed_run(
    services: TestServices, small: Backlog, database_url: str, tmp_path: Path, leaving: str
) -> None:
    """Worker B joins A's group mid-run; later A leaves (SIGTERM, or SIGKILL); B finishes.

    The backlog is produced in four parts so each step happens while records are
    waiting: part 1 before A starts, part 2 while B joins (A is busy with it when the
    group rebalances), part 3 once B has partitions, part 4 once A is gone.
    """
    records = small.records
    topics, (first, second, third), group, env = await _shared_group(
        services, small, database_url, "rebalance", (0.3, 0.55, 0.8)
    )
    progress = Progress(database_url, group)
    a = WorkerProcess(env, tmp_path / "a.log").start()
    b = WorkerProcess(env, tmp_path / "b.log")
    try:
        await progress.wait_for(lambda n: n > 0, worker=a, what="A's first commit")
        b.start()
        await produce_records(services.kafka_bootstrap, topics, records[first:second])
        deadline = time.monotonic() + 120
        while not b.assigned_counts():
            assert b.returncode is None, b.tail()
            assert time.monotonic() < deadline, f"B got no partitions:\n{b.tail()}"
            await asyncio.sleep(0.1)
        at_join = await progress()
        await produce_records(services.kafka_bootstrap, topics, records[second:third])
        await progress.wait_for(
            lambda n: n >= second + (third - second) // 2, worker=a, what="both consuming"
        )
        if leaving == "SIGTERM":
            assert await a.stop() == 0, a.tail()
        else:
            assert await a.kill() == -9, a.tail()
        at_leave = await progress()
        await produce_records(services.kafka_bootstrap, topics, records[third:])
        await progress.wait_for(
            lambda n: n == len(records), worker=b, what="B finishing alone", within_s=300
        )
        assert await b.stop() == 0, b.tail()
    finally:
        a.ensure_dead()
        b.ensure_dead()
        await progress.close()

    everything = len(topics) * PARTITIONS
    assert a.assigned_counts()[0] == everything
    assert min(a.assigned_counts()) < everything, "A never shared its partitions"
    assert 0 < b.assigned_counts()[0] < everything, "B joined without a split"
    assert b.assigned_counts()[-1] == everything, "B never took over A's partitions"
    b_records = b.summary()["records"]
    a_records = a.summary()["records"] if leaving == "SIGTERM" else None
    assert b_records > 0

    state = await full_snapshot(database_url, topics)
    difference = assert_same_state(small.baseline, state)
    report(
        f"rebalance_{leaving.lower()}",
        **facts(small, state),
        committed_when_b_joined=at_join,
        committed_when_a_left=at_leave,
        a_assignments=a.assigned_counts(),
        b_assignments=b.assigned_counts(),
        a_records=a_records,
        b_records=b_records,
        lost=sum(difference.lost.values()),
        duplicated=sum(difference.duplicated.values()),
    )


# --------------------------------------------------------------------------- zombie


class OffsetSampler:
    """Reads the group's stored offsets every few milliseconds, in the background, and
    records every time one moves backwards (none may: the upsert keeps the greatest)."""

    def __init__(self, url: str, group: str) -> None:
        self._url = url
        self._group = group
        self._task: asyncio.Task[None] | None = None
        self.samples = 0
        self.moves = 0
        self.backwards: list[tuple[tuple[str, int], int, int]] = []
        self.latest: dict[tuple[str, int], int] = {}

    async def __aenter__(self) -> OffsetSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        connection = await asyncpg.connect(self._url)
        try:
            while True:
                await asyncio.sleep(0.02)
                try:
                    rows = await connection.fetch(
                        "SELECT topic, partition, next_offset FROM consumer_offsets"
                        " WHERE group_id = $1",
                        self._group,
                    )
                except asyncpg.UndefinedTableError:
                    continue  # the first worker has not migrated yet
                self.samples += 1
                for row in rows:
                    position, offset = (row["topic"], row["partition"]), row["next_offset"]
                    before = self.latest.get(position, 0)
                    if offset < before:
                        self.backwards.append((position, before, offset))
                    elif offset > before:
                        self.moves += 1
                    self.latest[position] = max(before, offset)
        finally:
            await connection.close()


ZOMBIE = "pipestatus-zombie"
_IN_A_BATCH = """
SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
WHERE a.application_name = $1 AND l.relation = 'processed_events'::regclass
"""


async def _freeze_inside_a_batch(worker: WorkerProcess, url: str) -> int:
    """SIGSTOPs ``worker`` while a batch transaction of its is open (it holds a lock on
    ``processed_events``, which only batches write); SIGCONT and again if that batch
    committed between the look and the signal. Returns the number of tries."""
    connection = await asyncpg.connect(url)
    try:
        for tries in range(1, 51):
            deadline = time.monotonic() + 60
            while not await connection.fetchval(_IN_A_BATCH, ZOMBIE):
                assert worker.returncode is None, worker.tail()
                assert time.monotonic() < deadline, f"no batch transaction seen\n{worker.tail()}"
            worker.signal(signal.SIGSTOP)
            if await connection.fetchval(_IN_A_BATCH, ZOMBIE):
                return tries  # frozen with the transaction open, its locks held
            worker.signal(signal.SIGCONT)
    finally:
        await connection.close()
    raise AssertionError("never froze the worker inside a batch transaction")


async def _until(condition: Callable[[], bool], worker: WorkerProcess, what: str) -> None:
    """Polls ``condition`` (a log line, say) while ``worker`` keeps running."""
    deadline = time.monotonic() + 120
    while not condition():
        assert worker.returncode is None, f"worker exited before {what}:\n{worker.tail()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{worker.tail()}"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(600)
async def test_zombie_worker_frozen_past_its_session_timeout_moves_nothing_back(
    services: TestServices, small: Backlog, database_url: str, tmp_path: Path
) -> None:
    """A is SIGSTOPped mid-run, inside a batch transaction, until the group expels it and B
    owns every partition; B progresses (PostgreSQL ends A's idle transaction, so B does not
    wait on its locks); then A gets SIGCONT and carries on as a zombie (its batch fails on
    the ended session and is retried) until it notices and rejoins.

    The stored offsets are sampled all along and never move backwards; the final
    database equals the undisturbed run's. (The consumer session timeout is aiokafka's
    default, 10 s: no setting shortens it.)
    """
    records = small.records
    topics, (first, second), group, env = await _shared_group(
        services,
        small,
        database_url,
        "zombie",
        (0.4, 0.7),
        PIPESTATUS_DATABASE__IDLE_IN_TRANSACTION_TIMEOUT_S=str(IDLE_IN_TRANSACTION_S),
    )
    everything = len(topics) * PARTITIONS
    progress = Progress(database_url, group)
    a_url = f"{database_url}{'&' if '?' in database_url else '?'}application_name={ZOMBIE}"
    a = WorkerProcess(env | {"PIPESTATUS_DATABASE__URL": a_url}, tmp_path / "a.log").start()
    b = WorkerProcess(env, tmp_path / "b.log")
    try:
        async with OffsetSampler(database_url, group) as sampler:
            await progress.wait_for(lambda n: n > 0, worker=a, what="A's first commit")
            b.start()
            await _until(lambda: bool(b.assigned_counts()), b, "B's first partitions")
            await produce_records(services.kafka_bootstrap, topics, records[first:second])
            await _until(lambda: a.assigned_counts()[-1] < everything, a, "A sharing")
            at_freeze = await progress.wait_for(
                lambda n: n >= first, worker=a, what="both consuming"
            )
            freezes = await _freeze_inside_a_batch(a, database_url)
            frozen_at = time.monotonic()
            a_assignments = len(a.assigned_counts())
            await _until(lambda: b.assigned_counts()[-1] == everything, b, "B taking over")
            takeover_s = time.monotonic() - frozen_at
            at_takeover = await progress()
            assert at_takeover is not None
            await produce_records(services.kafka_bootstrap, topics, records[second:])
            await progress.wait_for(
                lambda n: n >= at_takeover + 2000,
                worker=b,
                what="B progressing alone",
                within_s=60,  # seconds of work; blocked on the zombie's locks, it never would
            )
            at_thaw = await progress()
            a.signal(signal.SIGCONT)
            frozen_s = time.monotonic() - frozen_at
            await _until(lambda: len(a.assigned_counts()) > a_assignments, a, "A rejoining")
            await progress.wait_for(
                lambda n: n == len(records), worker=b, what="the rest", within_s=300
            )
            assert await a.stop() == 0, a.tail()
            assert await b.stop() == 0, b.tail()
    finally:
        a.ensure_dead()
        b.ensure_dead()
        await progress.close()

    assert sampler.backwards == []
    assert frozen_s > 10  # past aiokafka's default session timeout
    assert sum(sampler.latest.values()) == len(records)
    state = await full_snapshot(database_url, topics)
    difference = assert_same_state(small.baseline, state)
    report(
        "zombie",
        **facts(small, state),
        committed_when_frozen=at_freeze,
        committed_when_b_took_over=at_takeover,
        committed_when_thawed=at_thaw,
        takeover_s=round(takeover_s, 1),
        frozen_s=round(frozen_s, 1),
        freeze_tries=freezes,
        a_assignments=a.assigned_counts(),
        b_assignments=b.assigned_counts(),
        a_records=a.summary()["records"],
        b_records=b.summary()["records"],
        offset_samples=sampler.samples,
        offset_moves=sampler.moves,
        offsets_moved_back=len(sampler.backwards),
        lost=sum(difference.lost.values()),
        duplicated=sum(difference.duplicated.values()),
    )


# --------------------------------------------------------------------------- backpressure


@pytest.mark.timeout(600)
async def test_peak_memory_is_bounded_by_the_batch_not_the_backlog(
    services: TestServices, database_url: str, second_database_url: str, tmp_path: Path
) -> None:
    """VmHWM of a worker draining 5N large (60 KB) records is close to that for N.

    A fetch is bounded (``MAX_BATCH_RECORDS``, ``MAX_BATCH_BYTES``) and a batch is
    released once committed, so the backlog waits in Kafka, not in the worker. Large
    records make anything the worker keeps per record (such as the re-delivery memo when
    it was bounded by count: 4 096 of 60 KB) show up as hundreds of MiB.
    """
    small = await _large_record_drain(services, MEMORY_RECORDS, database_url, tmp_path / "n.log")
    large = await _large_record_drain(
        services, 5 * MEMORY_RECORDS, second_database_url, tmp_path / "5n.log"
    )
    bound_kib = small.peak_kib + MEMORY_SLACK_MIB * 1024
    report(
        "memory",
        record_bytes=LARGE_RECORD_BYTES,
        small_records=small.records,
        small_mb=round(small.value_bytes / 1e6),
        small_peak_mib=round(small.peak_kib / 1024, 1),
        large_records=large.records,
        large_mb=round(large.value_bytes / 1e6),
        large_peak_mib=round(large.peak_kib / 1024, 1),
        bound_mib=round(bound_kib / 1024, 1),
        small_drain_s=round(small.drain_s, 1),
        large_drain_s=round(large.drain_s, 1),
    )
    assert large.peak_kib < bound_kib, (small.peak_kib, large.peak_kib)


@dataclass(frozen=True)
class _Drain:
    records: int
    value_bytes: int
    peak_kib: int
    drain_s: float


async def _large_record_drain(
    services: TestServices, events: int, database_url: str, log: Path
) -> _Drain:
    """Produces ``events`` workload records grown to 60 KB; one worker drains them."""
    workload = generate(events, seed=events)
    records = padded(keyed_by_pipeline(workload.records), LARGE_RECORD_BYTES)
    assert all(len(r.value) == LARGE_RECORD_BYTES for r in records if r.role != "invalid")
    topics = provider_topics(f"memory{events}")
    await create_topics(services.kafka_bootstrap, topics.values(), PARTITIONS)
    await produce_records(services.kafka_bootstrap, topics, records)
    group = f"memory-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(worker_env(services.kafka_bootstrap, group, topics, database_url), log)
    progress = Progress(database_url, group)
    began = time.monotonic()
    worker.start()
    try:
        await progress.wait_for(lambda n: n == events, worker=worker, what="the drain")
        seconds = time.monotonic() - began
        peak = worker.vm_hwm_kib()  # before exit: the drain's own peak
        assert await worker.stop() == 0, worker.tail()
    finally:
        worker.ensure_dead()
        await progress.close()
    check_against_workload(workload, await full_snapshot(database_url, topics))
    return _Drain(events, sum(len(r.value) for r in records), peak, seconds)
