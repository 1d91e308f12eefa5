"""The ``pipestatus`` command line: argument parsing and dispatch to subcommands."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pipestatus import __version__
from pipestatus.cli import api, edge, offline, operate, poll, retention
from pipestatus.errors import (
    BrokerRefusedError,
    ConfigError,
    InfrastructureError,
    UnstorableRecordError,
)
from pipestatus.logs import configure_logging
from pipestatus.settings import load_settings

#: The dev tooling's package (``demo``, ``bench``). The product never imports it by name
#: in code: the CLI looks it up at run time, so the production wheel, which lacks it,
#: lists only what it can run.
DEV_PACKAGE = "pipestatus_dev"
DEV_COMMANDS = ("demo", "bench")
DEV_HINT = (
    "`pipestatus {command}` is dev tooling, not part of this installation. From a checkout "
    "of the repository run `bash scripts/demo`, or install the dev extra: "
    "pip install -e '.[dev]' (pip install 'pipestatus[dev]')"
)


def dev_commands() -> Any | None:
    """The dev package's CLI module when it is installed, else None."""
    if importlib.util.find_spec(DEV_PACKAGE) is None:
        return None
    return importlib.import_module(f"{DEV_PACKAGE}.cli")


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
    retention.register(commands)
    edge.register(commands)
    poll.register(commands)
    api.register(commands)
    dev = dev_commands()
    if dev is not None:
        dev.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] and arguments[0] in DEV_COMMANDS:
        dev = dev_commands()
        if dev is None:
            print(f"pipestatus: {DEV_HINT.format(command=arguments[0])}", file=sys.stderr)
            return 2
        if arguments[0] == "bench":
            # The bench has its own parser; argparse's REMAINDER would refuse its options.
            return int(dev.run_bench(arguments[1:]))
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
    except UnstorableRecordError as exc:
        # Replay bypasses the worker's bisect: name the refusal instead of a traceback.
        print(
            f"pipestatus: {exc}\nPostgreSQL still refuses this record; replay the others by id "
            "and leave this one open (`pipestatus dead-letters show ID`).",
            file=sys.stderr,
        )
        return 1
    except BrokerRefusedError as exc:
        print(f"pipestatus: {exc}\n{exc.hint}", file=sys.stderr)
        return 3
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
