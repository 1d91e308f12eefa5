"""The ``pipestatus`` command line: argument parsing and dispatch to subcommands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pipestatus import __version__
from pipestatus.cli import embedded, offline, operate
from pipestatus.errors import ConfigError, InfrastructureError
from pipestatus.logs import configure_logging
from pipestatus.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipestatus",
        description="Data-pipeline run-status events from Kafka into PostgreSQL, "
        "with metrics and alerts.",
    )
    parser.add_argument("--version", action="version", version=f"pipestatus {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    offline.register(commands)
    operate.register(commands)
    embedded.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        # The bench has its own parser; argparse's REMAINDER would refuse its options.
        return embedded.run_bench(arguments[1:])
    args = build_parser().parse_args(arguments)
    try:
        if getattr(args, "offline", False):
            return int(args.handler(args))
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        return int(args.handler(args, settings))
    except ConfigError as exc:
        print(f"pipestatus: {exc}", file=sys.stderr)
        return 2
    except InfrastructureError as exc:
        print(
            f"pipestatus: {exc}\nCheck that the service is reachable and the "
            "PIPESTATUS_* settings point at it (`pipestatus config` shows them).",
            file=sys.stderr,
        )
        return 3
    except KeyboardInterrupt:
        logging.getLogger(__name__).info("interrupted")
        return 130
