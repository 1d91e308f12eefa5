"""``pipestatus prune``: delete history older than a retention (docs/runbook.md, "Retention")."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from pipestatus.adapters.postgres import PgStore
from pipestatus.adapters.prune import prune
from pipestatus.settings import Settings

_DURATION = re.compile(r"(?P<amount>\d+)(?P<unit>[smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``30d``, ``2w``: a positive age."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match["amount"]) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: give a positive number and a unit, e.g. 30d, 12h, 90m"
        )
    return timedelta(**{_UNITS[match["unit"]]: int(match["amount"])})


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "prune", help="delete old transitions of finished runs, event identities and done rows"
    )
    parser.add_argument(
        "--older-than", type=duration, required=True, metavar="DURATION", help="e.g. 30d"
    )
    parser.add_argument("--batch-size", type=int, default=5000, help="rows per transaction")
    parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    parser.add_argument("--json", action="store_true", help="one JSON object at the end")
    parser.set_defaults(handler=cmd_prune)


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    cutoff = datetime.now(UTC) - args.older_than

    def progress(table: str, total: int) -> None:
        print(f"  {table}: {total} deleted so far", file=sys.stderr)

    async def go() -> dict[str, int]:
        async with PgStore(settings.database.url.get_secret_value(), max_size=1) as store:
            await store.migrate()
            return await prune(
                store, cutoff, batch_size=args.batch_size, dry_run=args.dry_run, progress=progress
            )

    counts = asyncio.run(go())
    verb = "would delete" if args.dry_run else "deleted"
    for table, count in counts.items():
        print(f"{table}: {verb} {count}")
    if args.json:
        print(json.dumps({"cutoff": cutoff.isoformat(), "dry_run": args.dry_run, **counts}))
    return 0
