"""A receiver that refuses connections, then comes back, while one worker process runs.

``test_receivers.py`` drives the dispatcher object; here the whole worker
(``python -m pipestatus worker``) drains a realistic backlog whose alerts go to a webhook
on a port where nothing listens (connection refused), and keeps running while a
``HookServer`` is started on that same port. The delivery backoff is shortened through
``PIPESTATUS_ALERTS__RETRY_INITIAL_S`` / ``RETRY_MAX_S`` (production: 1 s and 300 s).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.world import generate
from tests.integration.fault_tools import (
    Progress,
    WorkerProcess,
    check_against_workload,
    full_snapshot,
    keyed_by_pipeline,
    produce_records,
    provider_topics,
    report,
    worker_env,
)
from tests.integration.hook_tools import SECRET, HookServer, unused_port
from tests.integration.kafka_tools import create_topics

pytestmark = [pytest.mark.services, pytest.mark.slow]

EVENTS = 5_000
SEED = 20261202
FAILED_ATTEMPTS = 2  # each key's first row is refused this often before the receiver is back
WEBHOOK_TYPE = {"trigger": "alert.firing", "resolve": "alert.resolved"}


async def _outbox(url: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT id, dedup_key, receiver, action, attempts, last_error, delivered_at,"
            " gave_up_at FROM alert_outbox ORDER BY id"
        )
    finally:
        await connection.close()
    return [dict(row) for row in rows]


async def _wait_for_outbox(
    url: str, worker: WorkerProcess, done: Any, what: str, within_s: float = 90
) -> list[dict[str, Any]]:
    """Polls the outbox until ``done(rows)``; fails if the worker exits first."""
    deadline = time.monotonic() + within_s
    while True:
        rows = await _outbox(url)
        if rows and done(rows):
            return rows
        assert worker.returncode is None, f"worker exited before {what}:\n{worker.tail()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{worker.tail()}"
        await asyncio.sleep(0.1)


def _heads(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first row of each dedup key: the one the dispatcher may try (rows are by id)."""
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["dedup_key"], row)
    return list(first.values())


@pytest.mark.timeout(300)
async def test_refused_receiver_comes_back_and_gets_every_alert_exactly_once(
    services: TestServices, database_url: str, tmp_path: Path
) -> None:
    workload = generate(EVENTS, SEED)
    records = keyed_by_pipeline(workload.records)
    topics = provider_topics("receiver-outage")
    await create_topics(services.kafka_bootstrap, topics.values(), 6)
    await produce_records(services.kafka_bootstrap, topics, records)
    port = unused_port()  # nothing listens here until the HookServer below
    receiver = {"name": "ops", "type": "webhook", "url": f"http://127.0.0.1:{port}/hook",
                "secret": SECRET, "timeout_s": 2}  # fmt: skip
    group = f"receiver-outage-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        services.kafka_bootstrap,
        group,
        topics,
        database_url,
        PIPESTATUS_ALERTS__RECEIVERS=json.dumps([receiver]),
        PIPESTATUS_ALERTS__RETRY_INITIAL_S="0.2",
        PIPESTATUS_ALERTS__RETRY_MAX_S="1",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    down_at = time.monotonic()
    progress = Progress(database_url, group)
    try:
        await progress.wait_for(lambda n: n == len(records), worker=worker, what="the backlog")
        refused = await _wait_for_outbox(
            database_url,
            worker,
            lambda rows: all(r["attempts"] >= FAILED_ATTEMPTS for r in _heads(rows)),
            "every alert refused twice",
        )
        outage_s = time.monotonic() - down_at
        assert all(r["delivered_at"] is None and r["gave_up_at"] is None for r in refused)
        heads = _heads(refused)
        assert all("ConnectError" in r["last_error"] for r in heads), heads[0]
        # the rows queued behind their key's first (a resolve behind its trigger) wait
        assert all(r["attempts"] == 0 for r in refused if r not in heads)
        async with HookServer(port=port) as hook:
            back_at = time.monotonic()
            rows = await _wait_for_outbox(
                database_url,
                worker,
                lambda rows: all(r["delivered_at"] is not None for r in rows),
                "every row delivered",
            )
            recovery_s = time.monotonic() - back_at
            assert worker.returncode is None, worker.tail()  # running the whole time
            assert await worker.stop() == 0, worker.tail()
        receptions = list(hook.receptions)
    finally:
        worker.ensure_dead()
        await progress.close()

    rows = await _outbox(database_url)  # after the exit: nothing added, nothing pending
    assert len(rows) == len(refused)
    assert all(r["delivered_at"] is not None and r["gave_up_at"] is None for r in rows)
    head_ids = {r["id"] for r in heads}
    assert all(r["attempts"] > FAILED_ATTEMPTS for r in rows if r["id"] in head_ids)
    assert all(r.signature_ok and r.status == 200 for r in receptions)
    # Exactly once: every outbox row arrived once under its stable webhook id, none missing.
    ids = Counter(r.headers["webhook-id"] for r in receptions)
    assert ids == Counter(f"msg_{row['id']}" for row in rows)
    # Per dedup key, the notifications arrived in the outbox's order (a resolve never first).
    received: defaultdict[str, list[str]] = defaultdict(list)
    for reception in receptions:
        received[reception.body["dedup_key"]].append(reception.body["type"])
    wanted: defaultdict[str, list[str]] = defaultdict(list)
    for row in rows:
        wanted[row["dedup_key"]].append(WEBHOOK_TYPE[row["action"]])
    assert received == wanted

    check_against_workload(workload, await full_snapshot(database_url, topics))
    missing = Counter(f"msg_{row['id']}" for row in rows) - ids
    report(
        "receiver_outage",
        records=len(records),
        outbox_rows=len(rows),
        dedup_keys=len(wanted),
        refused_attempts=sum(r["attempts"] for r in rows) - len(rows),
        outage_s=round(outage_s, 1),
        recovery_s=round(recovery_s, 1),
        deliveries=len(receptions),
        lost=sum(missing.values()),
        duplicated=sum(n - 1 for n in ids.values()),
    )
