"""Subcommands that talk to PostgreSQL and Kafka: worker, migrate, runs, dead letters, config."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from pipestatus.adapters.postgres import PgStore
from pipestatus.adapters.queries import (
    RunFilter,
    list_dead_letters,
    list_runs,
    show_dead_letter,
    show_run,
)
from pipestatus.app import (
    alerting_from,
    install_stop_signals,
    routing_from,
    run_worker,
    tune_garbage_collector,
)
from pipestatus.cli.arguments import PROVIDER_HELP, provider_name
from pipestatus.domain.states import RunState
from pipestatus.replay import replay_dead_letters
from pipestatus.settings import Settings, redact_url
from pipestatus.views import dump

T = TypeVar("T")


def register(commands: Any) -> None:
    worker = commands.add_parser("worker", help="consume events until SIGTERM/SIGINT")
    worker.add_argument(
        "--until-idle",
        action="store_true",
        help="exit 0 once every assigned partition is caught up (batch use, tests)",
    )
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(handler=cmd_migrate)

    health = commands.add_parser(
        "health", help="probe a running worker's /readyz (or /healthz with --live); exit 0/1"
    )
    health.add_argument("--live", action="store_true", help="liveness only (/healthz)")
    health.add_argument("--url", help="base URL (default: from PIPESTATUS_HTTP__HOST/PORT)")
    health.set_defaults(handler=cmd_health)

    config = commands.add_parser("config", help="print the effective settings (secrets hidden)")
    config.set_defaults(handler=cmd_config)

    runs = commands.add_parser("runs", help="list and show runs")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True)
    runs_list = runs_commands.add_parser("list", help="runs, most recently updated first")
    runs_list.add_argument("--provider", type=provider_name, help=PROVIDER_HELP)
    runs_list.add_argument("--state", choices=[s.value for s in RunState])
    runs_list.add_argument("--pipeline", help="pipeline id")
    runs_list.add_argument("--since", type=_moment, help="updated at or after (ISO 8601)")
    runs_list.add_argument("--limit", type=int, default=100)
    runs_list.add_argument("--json", action="store_true", help="one JSON object per line")
    runs_list.set_defaults(handler=cmd_runs_list)
    runs_show = runs_commands.add_parser("show", help="one run and its transitions")
    runs_show.add_argument("provider", type=provider_name, help=PROVIDER_HELP)
    runs_show.add_argument("run_id")
    runs_show.add_argument("--json", action="store_true")
    runs_show.set_defaults(handler=cmd_runs_show)

    letters = commands.add_parser("dead-letters", help="list, show and replay dead letters")
    letters_commands = letters.add_subparsers(dest="letters_command", required=True)
    letters_list = letters_commands.add_parser("list", help="open dead letters, newest first")
    letters_list.add_argument("--reason", help="only this reason code")
    letters_list.add_argument("--all", action="store_true", help="include replayed ones")
    letters_list.add_argument("--limit", type=int, default=100)
    letters_list.add_argument("--json", action="store_true")
    letters_list.set_defaults(handler=cmd_letters_list)
    letters_show = letters_commands.add_parser("show", help="one dead letter with its bytes")
    letters_show.add_argument("id", type=int)
    letters_show.add_argument("--json", action="store_true")
    letters_show.set_defaults(handler=cmd_letters_show)
    letters_replay = letters_commands.add_parser(
        "replay", help="re-validate open dead letters with today's code; apply what passes"
    )
    letters_replay.add_argument("ids", type=int, nargs="*", help="dead-letter ids (default: all)")
    letters_replay.add_argument("--reason", help="only this reason code")
    letters_replay.add_argument("--json", action="store_true")
    letters_replay.set_defaults(handler=cmd_letters_replay)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-07-01T00:00:00Z")
    return moment


def _with_store(settings: Settings, work: Callable[[PgStore], Awaitable[T]]) -> T:
    async def go() -> T:
        db = settings.database
        async with PgStore(db.url.get_secret_value(), max_size=2) as store:
            await store.migrate()
            return await work(store)

    return asyncio.run(go())


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    tune_garbage_collector()

    async def go() -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_worker(settings, until_idle=args.until_idle, stop=stop)
        return 0

    return asyncio.run(go())


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with PgStore(settings.database.url.get_secret_value(), max_size=1) as store:
            applied = await store.migrate()
        print(f"migrations applied: {applied}")
        return 0

    return asyncio.run(go())


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    # A wildcard bind address is reached through loopback from inside the container.
    wildcard = settings.http.host in ("0.0.0.0", "::")  # noqa: S104  # a comparison, not a bind
    host = "127.0.0.1" if wildcard else settings.http.host
    base = args.url or f"http://{host}:{settings.http.port}"
    path = "/healthz" if args.live else "/readyz"
    try:
        with urllib.request.urlopen(base + path, timeout=5) as response:  # noqa: S310  # http(s) only
            print(response.read().decode().strip())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"not ready: {exc.read().decode().strip()}", file=sys.stderr)
    except (urllib.error.URLError, TimeoutError) as exc:
        print(f"no answer from {base}{path}: {exc}", file=sys.stderr)
    return 1


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    shown = settings.model_dump(mode="json")  # SecretStr values dump as "**********"
    shown["database"]["url"] = redact_url(settings.database.url.get_secret_value())
    for receiver in shown["alerts"]["receivers"]:  # a receiver URL may carry a password too
        receiver["url"] = redact_url(receiver["url"])
    for source in shown["poll"]["sources"]:  # so may a poll source's URLs
        for name in ("base_url", "accounts_url"):
            if source[name] is not None:
                source[name] = redact_url(source[name])
    print(json.dumps(shown, indent=2))
    return 0


def cmd_runs_list(args: argparse.Namespace, settings: Settings) -> int:
    where = RunFilter(args.provider, args.state, args.pipeline, args.since, args.limit)
    runs = _with_store(settings, lambda store: list_runs(store, where))
    if args.json:
        for run in runs:
            print(json.dumps(dump(run), ensure_ascii=False))
        return 0
    print(f"{'PROVIDER':<14} {'RUN':<28} {'STATE':<10} {'PHASE':<16} {'ATT':>3}  UPDATED")
    for run in runs:
        print(
            f"{run.provider.value:<14} {run.run_id[:28]:<28} {run.state.value:<10} "
            f"{(run.phase or '-')[:16]:<16} {run.attempt:>3}  {run.updated_at:%Y-%m-%d %H:%M:%S}"
        )
    return 0


def cmd_runs_show(args: argparse.Namespace, settings: Settings) -> int:
    found = _with_store(settings, lambda store: show_run(store, args.provider, args.run_id))
    if found is None:
        print(f"pipestatus: no run {args.provider}/{args.run_id}", file=sys.stderr)
        return 1
    run, transitions = found
    if args.json:
        print(json.dumps({"run": dump(run), "transitions": [dump(t) for t in transitions]}))
        return 0
    print(f"{run.provider.value}/{run.run_id}  pipeline={run.pipeline_id}  state={run.state.value}")
    if run.error_category:
        print(f"  error: {run.error_category.value} retryable={run.retryable} {run.error_message}")
    for warning in run.warnings:
        print(f"  warning: {warning}")
    for t in transitions:
        moved = f"{t.from_state.value if t.from_state else '-'} -> {t.to_state.value}"
        print(
            f"  {t.recorded_at:%Y-%m-%d %H:%M:%S}  attempt {t.attempt}  {moved:<22} "
            f"{t.to_phase or ''} ({t.provider_status})"
        )
    return 0


def cmd_letters_list(args: argparse.Namespace, settings: Settings) -> int:
    letters = _with_store(
        settings,
        lambda store: list_dead_letters(
            store, reason=args.reason, include_replayed=args.all, limit=args.limit
        ),
    )
    for letter in letters:
        if args.json:
            print(json.dumps(letter, ensure_ascii=False))
        else:
            where = (
                f"{letter['source_topic']}[{letter['source_partition']}]@{letter['source_offset']}"
            )
            print(f"{letter['id']:>6}  {letter['reason']:<22} {where:<32} {letter['message'][:80]}")
    return 0


def cmd_letters_show(args: argparse.Namespace, settings: Settings) -> int:
    letter = _with_store(settings, lambda store: show_dead_letter(store, args.id))
    if letter is None:
        print(f"pipestatus: no dead letter {args.id}", file=sys.stderr)
        return 1
    print(json.dumps(letter, indent=None if args.json else 2, ensure_ascii=False))
    return 0


def cmd_letters_replay(args: argparse.Namespace, settings: Settings) -> int:
    routing = routing_from(settings)
    alerting = alerting_from(settings)
    report = _with_store(
        settings,
        lambda store: replay_dead_letters(
            store, routing, ids=args.ids, reason=args.reason, alerting=alerting
        ),
    )
    counts = vars(report)
    if args.json:
        print(json.dumps(counts))
    else:
        print(" ".join(f"{name}={count}" for name, count in counts.items()))
    return 0
