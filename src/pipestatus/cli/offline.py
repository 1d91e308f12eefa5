"""Subcommands that need no service: validate a payload file, export JSON Schemas."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipestatus.cli.arguments import PROVIDER_HELP, provider_name
from pipestatus.domain.states import Provider
from pipestatus.errors import EventError
from pipestatus.providers import parse_record
from pipestatus.schemas import export
from pipestatus.views import ObservationView, dump

#: ``validate`` reads files up to this size (the worker's limit is configurable).
MAX_VALIDATE_BYTES = 16 * 1024 * 1024


def register(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="validate one payload file offline and print its normalized observations",
    )
    validate.add_argument("path", help="payload file, or - for standard input")
    validate.add_argument(
        "--provider",
        type=provider_name,
        help=f"provider of the payload (may be omitted when the shape is unambiguous): "
        f"{PROVIDER_HELP}",
    )
    validate.set_defaults(handler=cmd_validate, offline=True)

    schemas = commands.add_parser("schemas", help="JSON Schemas of every payload kind")
    schemas_commands = schemas.add_subparsers(dest="schemas_command", required=True)
    export_parser = schemas_commands.add_parser("export", help="write the schemas to DIR")
    export_parser.add_argument("directory", type=Path)
    export_parser.set_defaults(handler=cmd_schemas_export, offline=True)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        raw = sys.stdin.buffer.read() if args.path == "-" else Path(args.path).read_bytes()
    except OSError as exc:
        print(f"pipestatus: cannot read {args.path}: {exc.strerror}", file=sys.stderr)
        return 2
    provider = Provider(args.provider) if args.provider else None
    try:
        parsed = parse_record(raw, provider, max_bytes=MAX_VALIDATE_BYTES)
    except EventError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for observation in parsed.observations:
        print(json.dumps(dump(ObservationView.of(observation)), ensure_ascii=False))
    return 0


def cmd_schemas_export(args: argparse.Namespace) -> int:
    written = export(args.directory)
    print(f"wrote {len(written)} schemas to {args.directory}", file=sys.stderr)
    return 0
