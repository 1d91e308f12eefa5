"""``pipestatus serve``: the read API and web page (README, "Read API and web page")."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from pipestatus.app import install_stop_signals
from pipestatus.serve import run_serve
from pipestatus.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "serve", help="serve the read API (/api/v1) and the web page (/) until SIGTERM/SIGINT"
    )
    parser.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_serve(settings, stop=stop)
        return 0

    return asyncio.run(go())
