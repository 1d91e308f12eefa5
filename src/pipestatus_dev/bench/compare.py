"""The end-state comparison: both ``runs`` tables equal, and as the workload says.

Every column but the wall-clock ``created_at``/``updated_at``/``progressed_at`` is
compared, and each run's final state and attempt must be the ones the workload says it
must reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipestatus_dev.provision.databases import polling_connection
from pipestatus_dev.world import Workload

_RUN_COLUMNS = (
    "provider, run_id, pipeline_id, attempt, state, phase, phase_rank, provider_status, "
    "occurred_at, error_category, error_message, retryable, warnings::text, counters::text, "
    "kind, event_id, started_at, ended_at"
)


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
