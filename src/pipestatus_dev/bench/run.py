"""Orchestration of ``pipestatus bench``: services, the shared backlog, the repetitions.

For each repetition:

1. **Backlog drain** (``drain``). The workload (``workload.generate``) is produced once,
   before any consumer starts, to four fresh topics of 4 partitions; the worker, the limit
   consumer (``limit``), then the baseline (the other way round in odd repetitions), drain
   it into fresh databases.
2. **Comparison** (``compare``). Both ``runs`` tables must be equal, and equal to the
   final state and attempt the workload says each run must reach.
3. **Latency** (``latency``). Another workload is produced at the fixed offered rate while
   each consumer runs; each record's delay is from producer to committed offset.

Memory and CPU of each consumer are measured by ``child`` (its process tree's peak RSS,
its CPU time from ``wait4``). Services are embedded unless the environment names existing
ones (``services``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pipestatus.domain.states import Provider
from pipestatus_dev.bench.compare import Comparison, compare
from pipestatus_dev.bench.consumer import passed_through_settings
from pipestatus_dev.bench.context import Context
from pipestatus_dev.bench.drain import Drain, drain
from pipestatus_dev.bench.errors import BenchError
from pipestatus_dev.bench.latency import Latency, latency
from pipestatus_dev.bench.limit import TABLE as LIMIT_TABLE
from pipestatus_dev.bench.options import Options
from pipestatus_dev.bench.profile import summarize_profile
from pipestatus_dev.bench.progress import Progress
from pipestatus_dev.bench.services import KAFKA_ENV, Services, describe_postgres, services
from pipestatus_dev.bench.stopping import StopSignals
from pipestatus_dev.bench.topics import PARTITIONS, produce_backlog, topic_names
from pipestatus_dev.provision.databases import database_url_for, polling_connection
from pipestatus_dev.provision.topics import create_topics, delete_topics
from pipestatus_dev.world import Workload, generate

_T = TypeVar("_T")


@dataclass
class Repetition:
    worker: Drain
    baseline: Drain | None
    limit: Drain
    comparison: Comparison
    #: ``--workers N``: the drain with N workers in one group, and its end state's check.
    workers: Drain | None
    workers_expected_ok: bool | None
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
        await create_topics(svc.kafka, backlog_topics.values(), partitions=PARTITIONS)
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
    # The limit consumer drains next to the worker, so their ratio sees the same machine.
    order = ["worker", "limit", "workers", "baseline"]
    if options.skip_baseline:
        order.remove("baseline")
    if options.workers < 2:
        order.remove("workers")
    if index % 2:
        order.reverse()
    drains: dict[str, Drain] = {}
    for kind in order:
        label = f"r{index}_{kind}_drain"
        if kind == "workers":
            drains[kind] = await drain(
                ctx, "worker", topics, total, label, processes=options.workers
            )
        else:
            drains[kind] = await drain(ctx, kind, topics, total, label)
    await check_limit_rows(ctx, drains["limit"], total)
    workers_expected_ok = None
    if "workers" in drains:
        url = database_url_for(ctx.services.admin_url, drains["workers"].database)
        workers_expected_ok = (await compare(url, None, workload)).expected_ok
        ctx.progress.say(
            f"final states with {options.workers} workers: "
            f"{'ok' if workers_expected_ok else 'WRONG'}"
        )
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
        for kind in (kind for kind in order if kind in ("worker", "baseline")):
            latencies[kind] = await latency(ctx, kind, latency_workload, f"r{index}_{kind}_lat")
    return Repetition(
        drains["worker"],
        baseline,
        drains["limit"],
        comparison,
        drains.get("workers"),
        workers_expected_ok,
        latencies.get("worker"),
        latencies.get("baseline"),
    )


async def check_limit_rows(ctx: Context, limit: Drain, total: int) -> None:
    """The limit consumer is only a reference if it stored every record it committed."""
    url = database_url_for(ctx.services.admin_url, limit.database)
    async with polling_connection(url) as conn:
        stored = int(await conn.fetchval(f"SELECT count(*) FROM {LIMIT_TABLE}"))  # noqa: S608
    if stored < total:
        raise BenchError(f"the limit consumer stored {stored} of {total} records")


async def _profiled_drain(
    ctx: Context, topics: dict[Provider, str], total: int, path: Path
) -> dict[str, Any]:
    ctx.progress.say(f"profiling one more pipestatus drain with py-spy into {path}")
    result = await drain(ctx, "worker", topics, total, "profile_drain", profile=path)
    await ctx.drop(result.database)
    summary = summarize_profile(path)
    summary["eps_while_profiled"] = result.eps
    return summary


async def _profiled_latency(ctx: Context, workload: Workload, path: Path) -> dict[str, Any]:
    ctx.progress.say(f"profiling one more pipestatus latency phase with py-spy into {path}")
    result = await latency(ctx, "worker", workload, "profile_lat", profile=path)
    summary = summarize_profile(path)
    summary["p99_ms_while_profiled"] = result.p99_ms
    return summary


async def _watched(signals: StopSignals, work: Coroutine[Any, Any, _T]) -> _T:
    task = asyncio.current_task()
    assert task is not None  # noqa: S101  # we run inside asyncio.run
    signals.watch(task)
    try:
        return await work
    finally:
        signals.unwatch()


def run(options: Options) -> BenchResult:
    """Runs the whole bench; raises ``BenchError`` when it cannot, ``Interrupted`` on a signal.

    On SIGTERM or SIGINT the consumers and then the embedded services are stopped first.
    """
    progress = Progress()
    workdir = Path(tempfile.mkdtemp(prefix="pipestatus-bench-"))
    with StopSignals() as signals:
        try:
            with services(progress) as svc:
                outcome = asyncio.run(_watched(signals, run_async(options, progress, svc, workdir)))
        except asyncio.CancelledError:
            signals.check()  # cancelled by a signal: report it as such
            raise
        signals.check()
    if not options.keep_logs:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    else:
        progress.say(f"consumer logs kept in {workdir}")
    return outcome
