"""The demo's terminal view: runs by provider and state, transitions, dead letters, alerts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipestatus.adapters.postgres import PgStore, map_pg_errors
from pipestatus.domain.states import Provider, RunState
from pipestatus_dev.demo.receiver import ReceivedAlert

_RUN_COUNTS = "SELECT provider, state, count(*) AS n FROM runs GROUP BY provider, state"
_RECENT = """
SELECT provider, run_id, from_state, to_state, to_phase, attempt, recorded_at
FROM run_transitions ORDER BY id DESC LIMIT $1
"""
_LETTERS = "SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason ORDER BY n DESC"
#: Runs by the edge that brought them: the pollers' and the ingress's CloudEvents sources.
_VIA = """
SELECT CASE WHEN event_id LIKE 'ce:pipestatus/poll/%' THEN 'pollers'
            WHEN event_id LIKE 'ce:codat#%' THEN 'ingress' END AS via,
       provider, count(DISTINCT run_id) AS n
FROM run_transitions
WHERE event_id LIKE 'ce:pipestatus/poll/%' OR event_id LIKE 'ce:codat#%'
GROUP BY 1, 2 ORDER BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    counts: dict[tuple[str, str], int]
    recent: list[str]
    letters: list[tuple[str, int]]
    via: list[tuple[str, str, int]]


async def snapshot(store: PgStore, recent: int = 8) -> Snapshot:
    with map_pg_errors():
        counts = await store.pool.fetch(_RUN_COUNTS)
        rows = await store.pool.fetch(_RECENT, recent)
        letters = await store.pool.fetch(_LETTERS)
        via = await store.pool.fetch(_VIA)
    lines = []
    for row in rows:
        before = row["from_state"] or "new"
        after = row["to_state"] + (f"({row['to_phase']})" if row["to_phase"] else "")
        lines.append(
            f"{row['recorded_at']:%H:%M:%S}  {row['provider']:<13} {row['run_id'][:26]:<26} "
            f"att {row['attempt']}  {before} -> {after}"
        )
    return Snapshot(
        {(r["provider"], r["state"]): r["n"] for r in counts},
        lines,
        [(r["reason"], r["n"]) for r in letters],
        [(r["via"], r["provider"], r["n"]) for r in via],
    )


def render(
    shot: Snapshot,
    alerts: Sequence[ReceivedAlert],
    *,
    elapsed_s: float,
    produced: int,
    metrics_url: str,
    edge: str = "",
) -> str:
    states = list(RunState)
    head = f"{'RUNS':<15}" + "".join(f"{s.value:>10}" for s in states) + f"{'total':>8}"
    out = [
        f"pipestatus demo — {elapsed_s:5.0f}s — {produced} records produced — "
        f"metrics: {metrics_url}",
        "",
        head,
    ]
    for provider in Provider:
        row = [shot.counts.get((provider.value, s.value), 0) for s in states]
        out.append(f"{provider.value:<15}" + "".join(f"{n:>10}" for n in row) + f"{sum(row):>8}")
    totals = [sum(shot.counts.get((p.value, s.value), 0) for p in Provider) for s in states]
    out.append(f"{'all':<15}" + "".join(f"{n:>10}" for n in totals) + f"{sum(totals):>8}")
    if edge:
        for name in ("pollers", "ingress"):
            counts = "  ".join(f"{p}={n}" for via, p, n in shot.via if via == name) or "(none yet)"
            out.append(f"ARRIVED VIA {name.upper():<8} {counts}")  # runs, by edge
        out.append(edge)
    out += ["", "RECENT TRANSITIONS", *(f"  {line}" for line in shot.recent or ["(none yet)"])]
    letters = "  ".join(f"{reason}={n}" for reason, n in shot.letters) or "(none)"
    out += [
        "",
        f"DEAD LETTERS  {letters}",
        "",
        "ALERTS (local webhook receiver, signature checked)",
    ]
    for alert in list(alerts)[-6:] or []:
        mark = "ok" if alert.verified else "BAD SIGNATURE"
        kind = "FIRING  " if alert.kind == "alert.firing" else "RESOLVED"
        out.append(f"  {alert.at:%H:%M:%S} {kind} {alert.rule:<23} {alert.summary[:70]} [{mark}]")
    if not alerts:
        out.append("  (none yet)")
    return "\n".join(out)
