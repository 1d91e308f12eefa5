"""The bench's output: a readable table, then one JSON object as the last line.

Figures over several repetitions are medians. The JSON object has at least ``events``,
``eps``, ``baseline_eps``, ``ratio``, ``limit_eps``, ``share_of_limit`` (``eps`` ÷
``limit_eps``), ``p50_ms``, ``p99_ms``, ``baseline_p99_ms``, ``offered_eps`` and
``peak_rss_mb``; a figure that was not measured (``--skip-baseline``, ``--latency-seconds 0``)
is ``null``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pipestatus_dev.bench.profile import profile_lines

if TYPE_CHECKING:
    from pipestatus_dev.bench.run import BenchResult, Repetition

_T = TypeVar("_T")


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _pick(reps: Sequence[Repetition], get: Callable[[Repetition], _T | None]) -> list[_T | None]:
    return [get(rep) for rep in reps]


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def summary(result: BenchResult) -> dict[str, Any]:
    """The final JSON object."""
    eps = _median(_pick(result.repetitions, lambda r: r.worker.eps))
    data = _figures(result, eps)
    many = _workers(result, eps)
    if not many:
        return data
    data["per_run"].update(many.pop("per_run"))
    ordered: dict[str, Any] = {}
    for key, value in data.items():
        ordered[key] = value
        if key == "share_of_limit":
            ordered.update(many)
    return ordered


def _workers(result: BenchResult, eps: float | None) -> dict[str, Any]:
    """``--workers N``: the drain with N worker processes in one group, beside one worker's."""
    count = result.options.workers
    drains = [rep.workers for rep in result.repetitions if rep.workers is not None]
    if count < 2 or not drains:
        return {}
    many = _median([d.eps for d in drains])
    return {
        "workers": count,
        f"eps_{count}_workers": _round(many, 0),
        f"speedup_{count}_workers": _round(many / eps if many and eps else None, 2),
        f"cpu_ms_per_event_{count}_workers": _round(
            _median([1000 * d.cpu_s / d.records for d in drains]), 3
        ),
        f"peak_rss_mb_{count}_workers": _round(_median([d.peak_rss_mb for d in drains]), 0),
        "per_run": {f"eps_{count}_workers": [round(d.eps) for d in drains]},
    }


def _figures(result: BenchResult, eps: float | None) -> dict[str, Any]:
    reps = result.repetitions
    options = result.options
    baseline_eps = _median(_pick(reps, lambda r: r.baseline.eps if r.baseline else None))
    limit_eps = _median(_pick(reps, lambda r: r.limit.eps))
    worker_rss = [r.worker.peak_rss_mb for r in reps] + [
        r.worker_latency.peak_rss_mb for r in reps if r.worker_latency
    ]
    states_match = [r.comparison.equal for r in reps if r.comparison.equal is not None]
    expected_ok = (
        [r.comparison.expected_ok for r in reps]
        + [bool(r.worker_latency.expected_ok) for r in reps if r.worker_latency]
        + [r.workers_expected_ok for r in reps if r.workers_expected_ok is not None]
    )
    pg = result.services.postgres
    return {
        "events": options.events,
        "eps": _round(eps, 0),
        "baseline_eps": _round(baseline_eps, 0),
        "ratio": _round(eps / baseline_eps if eps and baseline_eps else None, 2),
        "limit_eps": _round(limit_eps, 0),
        "share_of_limit": _round(eps / limit_eps if eps and limit_eps else None, 3),
        "p50_ms": _round(_median(_pick(reps, lambda r: _lat(r.worker_latency, "p50_ms")))),
        "p99_ms": _round(_median(_pick(reps, lambda r: _lat(r.worker_latency, "p99_ms")))),
        "baseline_p50_ms": _round(
            _median(_pick(reps, lambda r: _lat(r.baseline_latency, "p50_ms")))
        ),
        "baseline_p99_ms": _round(
            _median(_pick(reps, lambda r: _lat(r.baseline_latency, "p99_ms")))
        ),
        "offered_eps": options.rate if options.latency_seconds > 0 else None,
        "achieved_offered_eps": _round(
            _median(_pick(reps, lambda r: _lat(r.worker_latency, "achieved_eps"))), 0
        ),
        "latency_events": (result.latency_workload["records"] if result.latency_workload else None),
        "peak_rss_mb": _round(max(worker_rss), 0) if worker_rss else None,
        "baseline_peak_rss_mb": _round(
            _median(_pick(reps, lambda r: r.baseline.peak_rss_mb if r.baseline else None)), 0
        ),
        "cpu_ms_per_event": _round(
            _median(_pick(reps, lambda r: 1000 * r.worker.cpu_s / r.worker.records)), 3
        ),
        "baseline_cpu_ms_per_event": _round(
            _median(
                _pick(
                    reps,
                    lambda r: 1000 * r.baseline.cpu_s / r.baseline.records if r.baseline else None,
                )
            ),
            3,
        ),
        "limit_cpu_ms_per_event": _round(
            _median(_pick(reps, lambda r: 1000 * r.limit.cpu_s / r.limit.records)), 3
        ),
        "limit_peak_rss_mb": _round(_median(_pick(reps, lambda r: r.limit.peak_rss_mb)), 0),
        "drain_s": _round(_median(_pick(reps, lambda r: r.worker.seconds)), 2),
        "limit_drain_s": _round(_median(_pick(reps, lambda r: r.limit.seconds)), 2),
        "baseline_drain_s": _round(
            _median(_pick(reps, lambda r: r.baseline.seconds if r.baseline else None)), 2
        ),
        "states_match": all(states_match) if states_match else None,
        "expected_states_ok": all(expected_ok),
        "runs": reps[0].comparison.worker_runs if reps else None,
        "repeat": len(reps),
        "seed": options.seed,
        "per_run": {
            "eps": [round(r.worker.eps) for r in reps],
            "baseline_eps": [round(r.baseline.eps) if r.baseline else None for r in reps],
            "limit_eps": [round(r.limit.eps) for r in reps],
            "share_of_limit": [round(r.worker.eps / r.limit.eps, 3) for r in reps],
            "p99_ms": [_round(_lat(r.worker_latency, "p99_ms")) for r in reps],
            "baseline_p99_ms": [_round(_lat(r.baseline_latency, "p99_ms")) for r in reps],
        },
        "workload": {
            key: result.workload[key]
            for key in ("records", "bytes", "duplicate", "late", "invalid", "runs", "providers")
        },
        "services": result.services.kind,
        "broker": result.services.broker,
        "postgres": pg.get("server_version"),
        "fsync": pg.get("fsync"),
        "synchronous_commit": pg.get("synchronous_commit"),
        "settings": result.settings,
        "machine": result.machine,
        "loadavg_start": [round(x, 2) for x in result.loadavg_start],
        "loadavg_end": [round(x, 2) for x in result.loadavg_end],
        "bench_seconds": round(result.seconds, 1),
        "profile": (
            {key: result.profile[key] for key in ("samples", "busy_share", "eps_while_profiled")}
            if result.profile
            else None
        ),
    }


def _lat(latency: Any, name: str) -> float | None:
    return None if latency is None else float(getattr(latency, name))


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


def table(result: BenchResult, data: dict[str, Any]) -> str:
    """The human-readable report (medians over the repetitions)."""
    options = result.options
    workload = result.workload
    pg = result.services.postgres
    lines = [
        f"pipestatus bench — {options.events:,} events, seed {options.seed}, "
        f"{len(result.repetitions)} run(s), medians",
        f"services: {result.services.kind}; {result.services.broker}; PostgreSQL "
        f"{pg.get('server_version')} (fsync={pg.get('fsync')}, "
        f"synchronous_commit={pg.get('synchronous_commit')})",
        f"machine: {result.machine['nproc']} CPUs {result.machine['cpu']}, "
        f"{result.machine['memory']}, Linux {result.machine['kernel']}, Python "
        f"{result.machine['python']}; load average {result.loadavg_start[0]:.2f} at start, "
        f"{result.loadavg_end[0]:.2f} at end",
        f"workload: {workload['records']:,} records ({workload['bytes'] / 1e6:,.0f} MB), "
        f"{workload['duplicate']:,} duplicates, {workload['late']:,} reordered, "
        f"{workload['invalid']:,} invalid; {workload['runs']:,} runs "
        f"({workload['reruns']:,} re-run); by provider "
        + ", ".join(f"{name} {count:,}" for name, count in workload["providers"].items()),
    ]
    if result.settings:
        lines.append(
            "settings passed to the consumers: "
            + ", ".join(f"{k}={v}" for k, v in result.settings.items())
        )
    rows = [
        ("", "pipestatus", "baseline", "ratio", "limit", "share of limit"),
        (
            "backlog drain (events/s)",
            _fmt(data["eps"]),
            _fmt(data["baseline_eps"]),
            _fmt(data["ratio"], "x", 1),
            _fmt(data["limit_eps"]),
            _fmt(data["share_of_limit"], digits=2),
        ),
    ]
    count = options.workers
    if data.get(f"eps_{count}_workers") is not None:
        many = data[f"eps_{count}_workers"]
        rows.append(
            (
                f"  with {count} workers in one group",
                _fmt(many),
                "",
                "",
                "",
                _fmt(many / data["limit_eps"] if data["limit_eps"] else None, digits=2),
            )
        )
    rows += [
        (
            "drain time (s)",
            _fmt(data["drain_s"], digits=1),
            _fmt(data["baseline_drain_s"], digits=1),
            "",
            _fmt(data["limit_drain_s"], digits=1),
            "",
        ),
        (
            "CPU per event (ms)",
            _fmt(data["cpu_ms_per_event"], digits=3),
            _fmt(data["baseline_cpu_ms_per_event"], digits=3),
            "",
            _fmt(data["limit_cpu_ms_per_event"], digits=3),
            "",
        ),
    ]
    if data["offered_eps"] is not None:
        rate = f"{data['offered_eps']:,.0f}/s"
        rows.extend(
            (
                f"event delay {name} @{rate}",
                _fmt(data[f"{name}_ms"], " ms"),
                _fmt(data[f"baseline_{name}_ms"], " ms"),
                "",
                "",
                "",
            )
            for name in ("p50", "p99")
        )
    rows.append(
        (
            "peak RSS (MB)",
            _fmt(data["peak_rss_mb"]),
            _fmt(data["baseline_peak_rss_mb"]),
            "",
            _fmt(data["limit_peak_rss_mb"]),
            "",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines.append("")
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    for index, rep in enumerate(result.repetitions, 1):
        parts = [f"run {index}: pipestatus {rep.worker.eps:,.0f} ev/s ({rep.worker.seconds:.1f}s)"]
        if rep.workers:
            parts.append(
                f"{options.workers} workers {rep.workers.eps:,.0f} ev/s ({rep.workers.seconds:.1f}s"
                f", end states {'as expected' if rep.workers_expected_ok else 'WRONG'})"
            )
        if rep.baseline:
            parts.append(f"baseline {rep.baseline.eps:,.0f} ev/s ({rep.baseline.seconds:.1f}s)")
        parts.append(
            f"limit {rep.limit.eps:,.0f} ev/s ({rep.limit.seconds:.1f}s, "
            f"share {rep.worker.eps / rep.limit.eps:.2f})"
        )
        if rep.worker_latency:
            wl = rep.worker_latency
            parts.append(
                f"delay p50/p99/max {wl.p50_ms:.0f}/{wl.p99_ms:.0f}/{wl.max_ms:.0f} ms "
                f"at {wl.achieved_eps:,.0f} ev/s"
            )
        if rep.baseline_latency:
            bl = rep.baseline_latency
            late = f", {bl.incomplete:,} not committed in time" if bl.incomplete else ""
            parts.append(f"baseline p50/p99 {bl.p50_ms:.0f}/{bl.p99_ms:.0f} ms{late}")
        cmp = rep.comparison
        if cmp.equal is None:
            parts.append(f"{cmp.worker_runs:,} runs")
        elif cmp.equal:
            parts.append(f"{cmp.worker_runs:,} runs, final states equal")
        else:
            parts.append(f"{cmp.differing:,} of {cmp.worker_runs:,} runs DIFFER")
        parts.append(
            "as expected"
            if cmp.expected_ok
            else f"NOT as expected ({cmp.expected_missing} missing, {cmp.expected_wrong} wrong)"
        )
        lines.append("; ".join(parts))
        if rep.worker.summary_line:
            lines.append("  " + rep.worker.summary_line.split(": ", 1)[-1])
        if rep.worker.rss_track:
            track = ", ".join(f"{done:,}: {rss:.0f}" for done, rss in rep.worker.rss_track)
            lines.append(f"  pipestatus RSS in MB by records committed: {track}")
        lines.extend(f"  differs: {example}" for example in cmp.examples)
    if result.profile:
        lines.append("")
        lines.append("backlog drain:")
        lines.extend(profile_lines(result.profile))
        if result.profile.get("latency"):
            lines.append("")
            lines.append(f"latency phase at {options.rate:,.0f} events/s:")
            lines.extend(profile_lines(result.profile["latency"]))
    return "\n".join(lines)


def render(result: BenchResult, *, json_only: bool) -> tuple[str, int]:
    """The text to print (table and JSON, or JSON only) and the exit code."""
    data = summary(result)
    text = json.dumps(data, separators=(",", ":"))
    if not json_only:
        text = table(result, data) + "\n\n" + text
    ok = data["expected_states_ok"] and data["states_match"] is not False
    return text, 0 if ok else 1
