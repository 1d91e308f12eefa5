"""How a consumer is started: its command line and its environment.

The bench sets the variables that point a consumer at its topics, group and database;
other ``PIPESTATUS_*`` variables (tuning) pass through, and the report lists them.
"""

from __future__ import annotations

import json
import os
import re
import sys

from pipestatus.domain.states import Provider

#: Variables the bench sets for its children; other PIPESTATUS_* ones (tuning) pass through.
_OWNED = (
    "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS",
    "PIPESTATUS_KAFKA__GROUP_ID",
    "PIPESTATUS_KAFKA__TOPICS",
    "PIPESTATUS_KAFKA__SHARED_TOPICS",
    "PIPESTATUS_KAFKA__DEAD_LETTER_TOPIC",
    "PIPESTATUS_DATABASE__URL",
    "PIPESTATUS_ALERTS__RECEIVERS",
    "PIPESTATUS_HTTP__PORT",
    "PIPESTATUS_LOG_LEVEL",
    "PIPESTATUS_LOG_FORMAT",
)
_SECRET = re.compile(r"PASSWORD|SECRET|KEY|URL|TOKEN", re.IGNORECASE)


def child_env(
    bootstrap: str, group: str, topics: dict[Provider, str], database_url: str
) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in _OWNED}
    env.update(
        {
            "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "PIPESTATUS_KAFKA__GROUP_ID": group,
            "PIPESTATUS_KAFKA__TOPICS": json.dumps({t: p.value for p, t in topics.items()}),
            "PIPESTATUS_KAFKA__SHARED_TOPICS": "[]",
            "PIPESTATUS_DATABASE__URL": database_url,
            "PIPESTATUS_ALERTS__RECEIVERS": "[]",  # never alert anyone about bench runs
            "PIPESTATUS_HTTP__PORT": "0",  # a free port: never clashes with a real worker
            "PIPESTATUS_LOG_LEVEL": "INFO",
            "PIPESTATUS_LOG_FORMAT": "text",
        }
    )
    return env


def passed_through_settings() -> dict[str, str]:
    """The caller's PIPESTATUS_* tuning the children inherit (secrets hidden)."""
    return {
        name: ("***" if _SECRET.search(name) else value)
        for name, value in sorted(os.environ.items())
        if name.startswith("PIPESTATUS_")
        and name not in _OWNED
        and not name.startswith("PIPESTATUS_BENCH_")
    }


#: What the progress lines and errors call each kind of consumer.
NAMES = {"worker": "pipestatus", "baseline": "baseline", "limit": "the limit consumer"}


def consumer_argv(kind: str, *, until_idle: bool, kafka_commit: bool) -> list[str]:
    if kind == "worker":
        argv = [sys.executable, "-m", "pipestatus", "worker"]
    elif kind == "limit":
        argv = [sys.executable, "-m", "pipestatus_dev.bench.limit"]
    else:
        argv = [sys.executable, "-m", "pipestatus_dev.bench.baseline"]
        if kafka_commit:
            argv.append("--kafka-commit")
    if until_idle:
        argv.append("--until-idle")
    return argv
