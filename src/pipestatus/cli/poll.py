"""``pipestatus poll``: read the providers' APIs and publish changed runs (README, "Pollers")."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from pipestatus.app import install_stop_signals
from pipestatus.poller import run_poller
from pipestatus.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "poll", help="poll the configured provider APIs, publish changed runs until SIGTERM"
    )
    parser.add_argument("--once", action="store_true", help="one round of every source, then exit")
    parser.set_defaults(handler=cmd_poll)


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        failed = await run_poller(settings, stop=stop, once=args.once)
        if failed:
            print(f"pipestatus: poll failed for {', '.join(failed)}", file=sys.stderr)
            return 1
        return 0

    return asyncio.run(go())
