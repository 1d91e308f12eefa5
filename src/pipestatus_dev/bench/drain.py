"""The backlog drain: how fast a consumer works through a backlog produced before it started.

The consumer runs as a subprocess (``python -m pipestatus worker --until-idle``, the
baseline ``python -m pipestatus_dev.bench.baseline --until-idle`` or the limit consumer
``python -m pipestatus_dev.bench.limit --until-idle``) with a fresh database and a fresh
consumer group (with ``--workers N``, once more with N worker processes in one group).
Throughput is records / (time the last offset is committed - time the partitions were
assigned): the group join, which Tansu holds for ~5 s, is not the consumer's work. The
last commit is seen by polling the ``consumer_offsets`` table every 20 ms; the assignment
by the consumer's own ``partitions assigned`` log line.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from pipestatus.domain.states import Provider
from pipestatus_dev.bench.child import Child
from pipestatus_dev.bench.consumer import NAMES, child_env, consumer_argv
from pipestatus_dev.bench.context import Context
from pipestatus_dev.bench.memory import tree_rss_kb
from pipestatus_dev.bench.profile import start_py_spy
from pipestatus_dev.provision.databases import checkpoint, polling_connection

DRAIN_POLL_S = 0.02


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


async def drain(
    ctx: Context,
    kind: str,
    topics: dict[Provider, str],
    total: int,
    label: str,
    *,
    profile: Path | None = None,
    processes: int = 1,
) -> Drain:
    """Drains the backlog with ``processes`` consumers of ``kind`` in one group and database.

    With several, the drain starts at the first ``partitions assigned``, the bench stops
    them (SIGTERM) once every record is committed, memory is the sum of their peaks and CPU
    the sum of their times.
    """
    name, url = await ctx.database(label)
    group = f"bench-{ctx.token}-{label}"
    env = child_env(ctx.services.bootstrap, group, topics, url)
    # Several consumers are stopped by the bench once all is committed: one that left the
    # group on its own when done with its partitions would stall the others in a rebalance.
    argv = consumer_argv(
        kind, until_idle=processes == 1, kafka_commit=ctx.options.baseline_kafka_commit
    )
    await checkpoint(ctx.services.admin_url)
    who = NAMES[kind] if processes == 1 else f"{processes} {NAMES[kind]} processes"
    children = [
        ctx.spawn(kind, argv, env, label if processes == 1 else f"{label}_{index}")
        for index in range(processes)
    ]
    pids = ", ".join(str(child.pid) for child in children)
    ctx.progress.say(f"draining the backlog with {who} ({label}, pid {pids})")
    spy = start_py_spy(children[0].pid, profile) if profile is not None else None
    limit = max(600.0, total / 50)
    started = children[0].started
    done_at: float | None = None
    # (records committed, RSS in MB of the consumers and their helper processes), each decile
    rss_track: list[tuple[int, float]] = []
    async with polling_connection(url) as conn:
        while done_at is None:
            committed = await _committed(conn, group)
            now = time.monotonic()
            if committed * 10 // total >= len(rss_track):
                rss_kb = [tree_rss_kb(child.pid) for child in children]
                if all(kb is not None for kb in rss_kb):
                    rss_track.append((committed, sum(kb or 0 for kb in rss_kb) / 1024))
            if committed >= total:
                done_at = now
                break
            stopped = [child for child in children if not child.running]
            if stopped:
                raise stopped[0].failure(f"{who} exited before draining {total} records")
            if now - started > limit:
                for child in children:
                    await child.stop()
                raise children[0].failure(f"{who} did not drain {total} records in {limit:.0f}s")
            assigned = _assigned_at(children)
            if assigned is not None:
                rate = committed / max(now - assigned, 1e-9)
                ctx.progress.every(
                    "drain",
                    3.0,
                    f"draining… {who} {100 * committed // total}% "
                    f"({committed}/{total}, {rate:,.0f} ev/s)",
                )
            await asyncio.sleep(DRAIN_POLL_S)
    for child in children:
        if processes > 1 or not await child.wait(120):
            await child.stop()
    if spy is not None:
        await asyncio.to_thread(spy.wait, 60)
    for child in children:
        if child.returncode != 0:
            raise child.failure(f"{who} failed")
    begin = _assigned_at(children) or started
    seconds = done_at - begin
    result = Drain(
        kind=kind,
        records=total,
        seconds=seconds,
        eps=total / seconds,
        join_s=begin - started,
        peak_rss_mb=sum(child.peak_rss_kb for child in children) / 1024,
        cpu_s=sum(child.cpu_s for child in children),
        summary_line=children[0].summary_line,
        database=name,
        rss_track=rss_track,
    )
    ctx.progress.say(
        f"{who} drained {total} records in {seconds:.1f}s: {result.eps:,.0f} ev/s, "
        f"peak RSS {result.peak_rss_mb:.0f} MB, CPU {result.cpu_s:.1f}s"
    )
    return result


def _assigned_at(children: list[Child]) -> float | None:
    """When the first of the consumers had partitions assigned."""
    moments = [child.assigned_at for child in children if child.assigned_at is not None]
    return min(moments) if moments else None


async def _committed(conn: asyncpg.Connection, group: str) -> int:
    try:
        value = await conn.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = $1",
            group,
        )
    except asyncpg.UndefinedTableError:
        return 0  # the consumer has not migrated its fresh database yet
    return int(value)
