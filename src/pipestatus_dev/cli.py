"""``pipestatus demo`` and ``pipestatus bench``: plugged into the product CLI when installed."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from pipestatus.logs import configure_logging


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run everything on embedded services with live traffic and a terminal view",
    )
    demo.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
    )
    demo.add_argument("--rate", type=float, default=60.0, help="records per second to feed")
    demo.set_defaults(handler=cmd_demo, offline=True)

    bench = commands.add_parser(
        "bench",
        help="measure drain rate, latency and memory against the naive baseline",
        add_help=False,
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(handler=cmd_bench, offline=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from pipestatus_dev.demo import run_demo  # imported on use: slow imports

    configure_logging("WARNING", "text")
    try:
        return asyncio.run(run_demo(args.duration, args.rate))
    except KeyboardInterrupt:
        return 130


def cmd_bench(args: argparse.Namespace) -> int:
    return run_bench(args.bench_args)


def run_bench(argv: Sequence[str]) -> int:
    from pipestatus_dev.bench import main as bench_main  # imported on use: slow imports

    result: int = bench_main(list(argv))
    sys.stdout.flush()
    return result
