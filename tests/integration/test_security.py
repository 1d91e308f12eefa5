"""Security properties end to end (issue #7): parameterized SQL, secrets kept out of logs,
errors and ``pipestatus config``, and the metrics/health endpoints bound where configured."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.app import run_worker
from pipestatus.cli import main
from pipestatus.domain.states import Provider
from pipestatus.settings import load_settings
from tests.integration.db_tools import fetch
from tests.integration.kafka_tools import (
    Message,
    create_topics,
    produce,
    topic_for,
    unique_topics,
    worker_settings,
)
from tests.integration.worker_tools import running_worker

pytestmark = [pytest.mark.services]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TABLES = ("runs", "run_transitions", "processed_events", "dead_letters", "consumer_offsets",
          "alert_state", "alert_outbox", "schema_migrations")  # fmt: skip


def fixture(provider: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / provider / f"{name}.json").read_text())
    return document


# --------------------------------------------------------------------------- SQL

HOSTILE_RUN = "x'); DROP TABLE runs; --"
HOSTILE_PIPELINE = "p'\"\\; DROP TABLE run_transitions; -- é中🚀\u202e\t$1 %s {0}"
HOSTILE_ERROR = "'); DELETE FROM runs WHERE (''=''; -- \\' \\\\"
HOSTILE_WEBHOOK_ID = "msg'; TRUNCATE consumer_offsets; --"
WEBHOOK_ID = HOSTILE_WEBHOOK_ID.encode()
HOSTILE_CE_SOURCE = "/src'); DROP TABLE dead_letters; --"
HOSTILE_CE_ID = "1' OR '1'='1"
HOSTILE_KEY = b"'; DROP TABLE processed_events; --"
HOSTILE_VALUE = b"'); DROP TABLE runs; -- not JSON"


async def test_sql_looking_ids_and_strings_are_stored_verbatim_and_tables_intact(
    services, database_url, monkeypatch, capsys
) -> None:
    topics = unique_topics()
    await create_topics(services.kafka_bootstrap, topics)
    failed = fixture("krenalis", "failed_pipeline_error") | {
        "id": HOSTILE_RUN,
        "pipeline": HOSTILE_PIPELINE,
        "error": HOSTILE_ERROR,
    }
    running = fixture("krenalis", "running") | {"id": "Robert'); DROP TABLE students;--"}
    via_cloudevents = fixture("krenalis", "running") | {"id": "ce\\'run\\\\", "pipeline": "q"}
    ce_headers = (("ce_specversion", b"1.0"), ("ce_id", HOSTILE_CE_ID.encode()),
                  ("ce_source", HOSTILE_CE_SOURCE.encode()),
                  ("ce_type", b"com.krenalis.run"))  # fmt: skip
    await produce(
        services.kafka_bootstrap,
        topic_for(topics, Provider.krenalis),
        [
            Message(json.dumps(failed).encode(), key=HOSTILE_RUN.encode()),
            Message(json.dumps(running).encode(), headers=(("webhook-id", WEBHOOK_ID),)),
            Message(json.dumps(via_cloudevents).encode(), headers=ce_headers),
            Message(HOSTILE_VALUE, key=HOSTILE_KEY),
        ],
    )  # fmt: skip
    summary = await run_worker(
        worker_settings(services.kafka_bootstrap, database_url, topics), until_idle=True
    )
    assert summary.records == 4

    for table in TABLES:
        [row] = await fetch(database_url, "SELECT to_regclass($1) IS NOT NULL AS ok", table)
        assert row["ok"], f"table {table} is gone"
    runs = {
        r["run_id"]: r
        for r in await fetch(database_url, "SELECT run_id, pipeline_id, error_message FROM runs")
    }
    assert runs.keys() == {HOSTILE_RUN, running["id"], via_cloudevents["id"]}
    assert runs[HOSTILE_RUN]["pipeline_id"] == HOSTILE_PIPELINE
    assert runs[HOSTILE_RUN]["error_message"] == HOSTILE_ERROR
    events = {
        r["event_id"] for r in await fetch(database_url, "SELECT event_id FROM processed_events")
    }
    assert f"webhook:{HOSTILE_WEBHOOK_ID}" in events
    assert f"ce:{HOSTILE_CE_SOURCE}#{HOSTILE_CE_ID}" in events
    [letter] = await fetch(database_url, "SELECT record_key, raw_value, reason FROM dead_letters")
    assert (letter["record_key"], letter["raw_value"], letter["reason"]) == (
        HOSTILE_KEY, HOSTILE_VALUE, "not_json",
    )  # fmt: skip
    [offsets] = await fetch(database_url, "SELECT next_offset FROM consumer_offsets")
    assert offsets["next_offset"] == 4
    [alert] = await fetch(database_url, "SELECT pipeline_id, labels FROM alert_state"
                          " WHERE rule = 'PipelineRunFailed'")  # fmt: skip
    assert alert["pipeline_id"] == HOSTILE_PIPELINE
    assert json.loads(alert["labels"])["pipeline_id"] == HOSTILE_PIPELINE

    # The query commands pass these strings as parameters too.
    monkeypatch.setenv("PIPESTATUS_DATABASE__URL", database_url)
    assert await asyncio.to_thread(main, ["runs", "show", "krenalis", HOSTILE_RUN, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["pipeline_id"] == HOSTILE_PIPELINE
    assert [t["to_state"] for t in shown["transitions"]] == ["failed"]
    argv = ["runs", "list", "--pipeline", HOSTILE_PIPELINE, "--json"]
    assert await asyncio.to_thread(main, argv) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [run["run_id"] for run in listed] == [HOSTILE_RUN]
    count = await fetch(database_url, "SELECT count(*) AS n FROM runs")
    assert count[0]["n"] == 3


# --------------------------------------------------------------------------- secrets


@contextlib.asynccontextmanager
async def echo_server(received: list[bytes]) -> AsyncIterator[str]:
    """Answers every request 400 with the request body echoed back (a chatty receiver)."""

    async def reject(request: Request) -> Response:
        body = await request.body()
        received.append(body)
        return Response(b"rejected: " + body, status_code=400, media_type="text/plain")

    app = Starlette(routes=[Route("/{path:path}", reject, methods=["POST"])])
    async with AsgiServer(app, host="127.0.0.1", port=0, name="echo") as server:
        yield f"127.0.0.1:{server.port}"


@contextlib.asynccontextmanager
async def database_with_password(admin_url: str, password: str) -> AsyncIterator[str]:
    """A database owned by a new role that logs in with ``password``; its URL."""
    role, name = f"secret_{uuid.uuid4().hex[:8]}", f"pipestatus_secret_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    try:
        create = await admin.fetchval(
            "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
            role,
            password,
        )
        await admin.execute(create)
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
        parts = urlsplit(admin_url)
        netloc = f"{role}:{password}@{parts.hostname}:{parts.port}"
        yield urlunsplit(parts._replace(netloc=netloc, path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


def run_cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipestatus", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_secrets_never_reach_logs_errors_or_config_output(services, tmp_path) -> None:
    """Secrets configured everywhere; a DEBUG worker run with failing deliveries, an
    unreachable database and ``pipestatus config`` never print any of them."""
    tag = uuid.uuid4().hex[:12]
    secrets = {
        "database password": f"DbPw{tag}",
        "SASL password": f"SaslPw{tag}",
        "webhook secret": "whsec_" + base64.b64encode(f"key-{tag}-32-bytes!".encode()).decode(),
        "PagerDuty routing key": f"R0UT1NGK3Y{tag}",
        "receiver URL password": f"AmPw{tag}",
    }  # fmt: skip
    topics = unique_topics()
    await create_topics(services.kafka_bootstrap, topics)
    failure = fixture("krenalis", "failed_pipeline_error") | {"id": f"leak-{tag}"}
    await produce(
        services.kafka_bootstrap,
        topic_for(topics, Provider.krenalis),
        [Message(json.dumps(failure).encode()), Message(b"not json at all")],
    )
    received: list[bytes] = []
    async with (
        echo_server(received) as address,
        database_with_password(services.database_url, secrets["database password"]) as url,
    ):
        receivers = [
            {"name": "am", "type": "alertmanager",
             "url": f"http://alerts:{secrets['receiver URL password']}@{address}"},
            {"name": "hook", "type": "webhook", "url": f"http://{address}/hook",
             "secret": secrets["webhook secret"]},
            {"name": "pd", "type": "pagerduty", "url": f"http://{address}/v2/enqueue",
             "routing_key": secrets["PagerDuty routing key"]},
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIPESTATUS_")}
        env |= {
            "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS": services.kafka_bootstrap,
            "PIPESTATUS_KAFKA__GROUP_ID": f"secrets-{tag}",
            "PIPESTATUS_KAFKA__TOPICS": json.dumps({t: p.value for t, p in topics.items()}),
            "PIPESTATUS_KAFKA__SASL_MECHANISM": "PLAIN",
            "PIPESTATUS_KAFKA__SASL_USERNAME": "pipestatus",
            "PIPESTATUS_KAFKA__SASL_PASSWORD": secrets["SASL password"],
            "PIPESTATUS_DATABASE__URL": url,
            "PIPESTATUS_ALERTS__RECEIVERS": json.dumps(receivers),
            "PIPESTATUS_WORKER__IDLE_POLLS": "2",
            "PIPESTATUS_HTTP__PORT": "0",
            "PIPESTATUS_LOG_LEVEL": "DEBUG",
        }
        worker = await asyncio.to_thread(run_cli, ["worker", "--until-idle"], env)
        assert worker.returncode == 0, worker.stderr[-3000:]
        config = await asyncio.to_thread(run_cli, ["config"], env)
        assert config.returncode == 0, config.stderr
        errors = await fetch(url, "SELECT last_error FROM alert_outbox")
        letters = await fetch(url, "SELECT message FROM dead_letters")
    unreachable = env | {
        "PIPESTATUS_DATABASE__URL": f"postgresql://pipestatus:{secrets['database password']}"
        f"@127.0.0.1:{closed_port()}/pipestatus",
        "PIPESTATUS_DATABASE__CONNECT_TIMEOUT_S": "2",
    }
    migrate = await asyncio.to_thread(run_cli, ["migrate"], unreachable)
    down = await asyncio.to_thread(run_cli, ["worker", "--until-idle"], unreachable)
    assert migrate.returncode == down.returncode == 3, migrate.stderr + down.stderr

    # The secrets were really in play: the routing key went out in a request body the
    # receiver echoed back, and every delivery failed with that echo.
    assert any(secrets["PagerDuty routing key"].encode() in body for body in received)
    assert "DEBUG" in worker.stderr
    assert worker.stderr.count("HTTP 400") >= 3
    assert "***" in worker.stderr
    assert len(errors) == 3
    assert all(r["last_error"] for r in errors)
    shown = json.loads(config.stdout)
    assert shown["database"]["url"].count("***") == 1
    assert shown["kafka"]["sasl_password"] == "**********"

    outputs = {
        "worker log": worker.stdout + worker.stderr,
        "pipestatus config": config.stdout + config.stderr,
        "migrate error": migrate.stdout + migrate.stderr,
        "worker error": down.stdout + down.stderr,
        "outbox errors": " ".join(str(r["last_error"]) for r in errors),
        "dead-letter messages": " ".join(r["message"] for r in letters),
    }
    for where, text in outputs.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} appears in the {where}"
        key_only = secrets["webhook secret"].removeprefix("whsec_")
        assert key_only not in text, f"the webhook signing key appears in the {where}"


# --------------------------------------------------------------------------- HTTP bind


def non_loopback_ipv4() -> str | None:
    """This machine's address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


async def reachable(host: str, port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://{host}:{port}/healthz")).status_code == 200
    except httpx.ConnectError:
        return False


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])  # noqa: S104  # the wildcard case
async def test_metrics_server_binds_only_where_configured(
    services, database_url, monkeypatch, host
) -> None:
    """PIPESTATUS_HTTP__HOST=127.0.0.1 is loopback only; 0.0.0.0 (the control) is not."""
    topics = unique_topics()
    await create_topics(services.kafka_bootstrap, topics)
    monkeypatch.setenv("PIPESTATUS_HTTP__HOST", host)
    monkeypatch.setenv("PIPESTATUS_HTTP__PORT", "0")
    configured = load_settings()
    assert configured.http.host == host
    settings = worker_settings(services.kafka_bootstrap, database_url, topics)
    settings = settings.model_copy(update={"http": configured.http})
    other = non_loopback_ipv4()
    async with running_worker(settings) as server:
        assert server.bound_address == host
        assert await reachable("127.0.0.1", server.port)
        if other is not None:
            assert await reachable(other, server.port) is (host != "127.0.0.1")
