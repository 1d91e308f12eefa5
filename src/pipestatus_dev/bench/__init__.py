"""``pipestatus bench``: the worker against the naive baseline on one realistic workload.

See ``docs/benchmarks.md``. ``main(argv)`` is the command line (``python -m
pipestatus_dev.bench``); progress goes to stderr, the table and then one JSON object (the last
line) to stdout. Exit codes: 0 done and every final state as expected, 1 a final-state
mismatch, 2 bad arguments, 3 the bench could not run (a service or a consumer failed),
128 + the signal's number when SIGTERM (143) or SIGINT (130) stopped it (its consumers
and embedded services are stopped first).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipestatus bench",
        description="Drain a realistic backlog and measure event delay at a fixed rate, "
        "for pipestatus's worker and the naive one-event-per-transaction baseline. "
        "Embedded services unless PIPESTATUS_BENCH_KAFKA_BOOTSTRAP / "
        "PIPESTATUS_BENCH_DATABASE_URL name existing ones.",
    )
    parser.add_argument(
        "--events",
        type=_positive_int,
        default=200_000,
        help="backlog size in records (default 200000)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=2_000.0,
        help="offered rate of the latency phase in events/s (default 2000)",
    )
    parser.add_argument(
        "--latency-seconds",
        type=_non_negative_float,
        default=20.0,
        help="length of the latency phase; 0 skips it (default 20)",
    )
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument("--skip-baseline", action="store_true", help="measure pipestatus only")
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        help="repetitions; figures are medians (default 1)",
    )
    parser.add_argument(
        "--json-only", action="store_true", help="print only the JSON line on stdout"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        help="after the measured runs, drain (and run the latency phase) once more under py-spy "
        "(raw stacks to PATH and PATH.latency) and add the top entries to the report",
    )
    parser.add_argument(
        "--baseline-kafka-commit",
        action="store_true",
        help="the baseline also commits each offset to Kafka",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the consumers' logs (the path is printed)"
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="with 2 or more, also drain the backlog with N worker processes in one consumer "
        "group (figure eps_N_workers; default 1)",
    )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the bench; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, bad arguments 2
        return int(exc.code or 0)
    from pipestatus.errors import PipestatusError
    from pipestatus_dev.bench.errors import BenchError
    from pipestatus_dev.bench.options import Options
    from pipestatus_dev.bench.profile import py_spy_command
    from pipestatus_dev.bench.report import render
    from pipestatus_dev.bench.run import run
    from pipestatus_dev.bench.stopping import Interrupted

    if args.profile is not None and py_spy_command() is None:
        sys.stderr.write("pipestatus bench: --profile needs py-spy (pip install py-spy)\n")
        return 2
    options = Options(
        events=args.events,
        rate=args.rate,
        latency_seconds=args.latency_seconds,
        seed=args.seed,
        skip_baseline=args.skip_baseline,
        repeat=args.repeat,
        json_only=args.json_only,
        profile=args.profile,
        baseline_kafka_commit=args.baseline_kafka_commit,
        keep_logs=args.keep_logs,
        workers=args.workers,
    )
    try:
        result = run(options)
    except Interrupted as stopped:
        sys.stderr.write(
            f"pipestatus bench: {stopped}; the consumers and the embedded services are stopped\n"
        )
        return stopped.exit_code
    except (BenchError, PipestatusError, OSError, RuntimeError) as exc:
        sys.stderr.write(f"pipestatus bench: {exc}\n")
        return 3
    except KeyboardInterrupt:
        sys.stderr.write("pipestatus bench: interrupted\n")
        return 130
    text, code = render(result, json_only=args.json_only)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return code
