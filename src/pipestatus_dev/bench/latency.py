"""The latency phase: each event's delay at a fixed offered rate, from producer to commit.

A workload of ``rate * seconds`` records is produced at the fixed offered rate to fresh
topics while the consumer runs (started first, and waited for until its partitions are
assigned). Each record's delay is the time its offset was first seen committed in
``consumer_offsets`` minus the time it was handed to the producer. The effects and the
offset are committed in one transaction, so that is when the event became visible. Both
instants are taken in this process (one monotonic clock); the poll runs every 5 ms, so a
delay is over-stated by up to 5 ms plus one query's round trip.
"""

from __future__ import annotations

import asyncio
import bisect
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from pipestatus.domain.states import Provider
from pipestatus_dev.bench.compare import check_expected, fetch_runs
from pipestatus_dev.bench.consumer import child_env, consumer_argv
from pipestatus_dev.bench.context import Context
from pipestatus_dev.bench.profile import start_py_spy
from pipestatus_dev.bench.topics import PARTITIONS, new_producer, topic_names
from pipestatus_dev.provision.databases import checkpoint, polling_connection
from pipestatus_dev.provision.topics import create_topics
from pipestatus_dev.world import BenchRecord, Workload

LATENCY_POLL_S = 0.005
#: (topic, partition) → when each newly committed offset was first seen, and that offset.
History = dict[tuple[str, int], tuple[list[float], list[int]]]
Position = tuple[str, int, int]  # (topic, partition, offset) of one produced record


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
    await create_topics(ctx.services.kafka, topics.values(), partitions=PARTITIONS)
    ctx.topics.extend(topics.values())
    name, url = await ctx.database(label)
    group = f"bench-{ctx.token}-{label}"
    env = child_env(ctx.services.bootstrap, group, topics, url)
    argv = consumer_argv(kind, until_idle=False, kafka_commit=options.baseline_kafka_commit)
    who = "pipestatus" if kind == "worker" else "baseline"
    await checkpoint(ctx.services.admin_url)
    # A producer as users run one: Kafka's own default linger is 5 ms (since 4.0), and
    # every record's delay still counts from the moment it is handed to the producer.
    producer = new_producer(ctx.services.kafka, linger_ms=5)
    await producer.start()
    child = ctx.spawn(kind, argv, env, label)
    spy = start_py_spy(child.pid, profile) if profile is not None else None
    history: History = {}
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
    delays, incomplete = _delays(positions, sent_at, history, give_up=time.monotonic())
    if options.keep_logs:
        _write_delays(ctx.workdir / f"{label}.delays.csv", positions, sent_at, delays)
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


def _delays(
    positions: Sequence[Position], sent_at: Sequence[float], history: History, *, give_up: float
) -> tuple[list[float], int]:
    """Each record's delay, in production order, and how many were never seen committed."""
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
    return delays, incomplete


def _write_delays(
    path: Path, positions: Sequence[Position], sent_at: Sequence[float], delays: Sequence[float]
) -> None:
    """The ``--keep-logs`` CSV: one line per record, in production order."""
    with path.open("w", encoding="utf-8") as out:
        out.write("sent_s,delay_ms,topic,partition,offset\n")
        for (topic, partition, offset), sent, delay in zip(positions, sent_at, delays, strict=True):
            out.write(f"{sent - sent_at[0]:.4f},{1000 * delay:.2f},{topic},{partition},{offset}\n")


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
    history: History,
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
