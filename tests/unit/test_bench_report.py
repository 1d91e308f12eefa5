"""The bench's report: the limit consumer's figures and the N-worker drain in table and JSON."""

from __future__ import annotations

import json

from pipestatus.settings import KafkaSettings
from pipestatus_dev.bench.compare import Comparison
from pipestatus_dev.bench.drain import Drain
from pipestatus_dev.bench.options import Options
from pipestatus_dev.bench.report import render
from pipestatus_dev.bench.run import BenchResult, Repetition
from pipestatus_dev.bench.services import Services


def _drain(kind: str, eps: float, records: int = 1000) -> Drain:
    seconds = records / eps
    return Drain(kind, records, seconds, eps, 5.0, 100.0, records * 0.0002, None, "db")


def _result(*, workers: int) -> BenchResult:
    comparison = Comparison(10, None, None, 0, [], True, 0, 0, {})
    reps = [
        Repetition(
            worker=_drain("worker", eps),
            baseline=None,
            limit=_drain("limit", limit),
            comparison=comparison,
            workers=_drain("worker", 1.5 * eps) if workers > 1 else None,
            workers_expected_ok=True if workers > 1 else None,
            worker_latency=None,
            baseline_latency=None,
        )
        for eps, limit in ((2000.0, 10000.0), (3000.0, 12000.0), (2500.0, 20000.0))
    ]
    workload = {
        "records": 1000,
        "bytes": 10**6,
        "duplicate": 150,
        "late": 100,
        "invalid": 10,
        "runs": 10,
        "reruns": 1,
        "providers": {"codat": 1000},
    }
    machine = {"nproc": 2, "cpu": "cpu", "memory": "1 GiB", "kernel": "6", "python": "3.11"}
    return BenchResult(
        options=Options(events=1000, latency_seconds=0, skip_baseline=True, workers=workers),
        services=Services("b:9092", "postgresql://x", "embedded", "tansu", KafkaSettings()),
        workload=workload,
        latency_workload=None,
        repetitions=reps,
        profile=None,
        machine=machine,
        settings={},
        loadavg_start=(0.0, 0.0, 0.0),
        loadavg_end=(0.0, 0.0, 0.0),
        seconds=1.0,
    )


def test_share_of_limit_is_the_worker_median_over_the_limit_median() -> None:
    """``share_of_limit`` divides the medians; per run it divides each run's own rates."""
    text, code = render(_result(workers=1), json_only=False)
    data = json.loads(text.splitlines()[-1])
    assert code == 0
    assert data["limit_eps"] == 12000
    assert data["share_of_limit"] == round(2500 / 12000, 3)
    assert data["per_run"]["share_of_limit"] == [0.2, 0.25, 0.125]
    assert "eps_2_workers" not in data
    assert "share of limit" in text


def test_workers_figures_appear_only_with_several_workers() -> None:
    """``--workers 2`` adds ``eps_2_workers`` and its speedup next to the limit's figures."""
    text, code = render(_result(workers=2), json_only=True)
    data = json.loads(text)
    assert code == 0
    assert data["eps_2_workers"] == 3750
    assert data["speedup_2_workers"] == 1.5
    assert data["per_run"]["eps_2_workers"] == [3000, 4500, 3750]
    keys = list(data)
    assert keys.index("eps_2_workers") == keys.index("share_of_limit") + 2
