"""``pipestatus ingress``: the signed-webhook front door (docs/runbook.md, "Ingress")."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from pipestatus.app import install_stop_signals
from pipestatus.ingress import run_ingress
from pipestatus.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "ingress", help="receive signed webhooks and put them on Kafka until SIGTERM/SIGINT"
    )
    parser.set_defaults(handler=cmd_ingress)


def cmd_ingress(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_ingress(settings, stop=stop)
        return 0

    return asyncio.run(go())
