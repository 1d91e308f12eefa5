"""Network faults and a PostgreSQL crash on real services with real worker processes (issue 11).

Each scenario drains the 20 000-record mixed backlog of the ``small`` fixture (conftest.py,
shared with ``test_faults.py``) and ends with the database equal, table by table, to that
of an undisturbed worker:

- database connections reset (RST) mid-batch four times, reset twice just as the server
  answers a batch's COMMIT (committed, but the worker never hears it), then stalled twice
  for 3 s, through the tests' own TCP proxy (``tcp_proxy.py``) between worker and server;
- broker connections reset and stalled the same way, on a dedicated Tansu whose
  advertised listener is the proxy, so metadata sends every data connection through it;
- PostgreSQL SIGKILLed (the postmaster) three times while a batch's transaction is open,
  restarted each time on the same data and port (crash recovery).

Every fault is injected while one of the worker's transactions is open
(``pg_stat_activity``), after its first committed batch. Each scenario prints one
``RELIABILITY`` line with its counts (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from pipestatus_dev.embedded import (
    LOOPBACK,
    EmbeddedKafka,
    EmbeddedPostgres,
    free_port,
    kafka_broker_info,
)
from pipestatus_dev.provision.databases import temporary_database
from pipestatus_dev.provision.services import TestServices
from tests.integration.fault_tools import (
    PARTITIONS,
    Backlog,
    Progress,
    WorkerProcess,
    assert_same_state,
    facts,
    full_snapshot,
    metric,
    produce_records,
    report,
    worker_env,
)
from tests.integration.kafka_tools import create_topics
from tests.integration.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.services, pytest.mark.slow]

BATCH = "500"
STALL_S = 3.0
DROPS_AT = (0.1, 0.2, 0.3, 0.4)  # fractions of the backlog committed
COMMIT_CUTS_AT = (0.5, 0.6)
STALLS_AT = (0.7, 0.85)
#: Client bytes a transaction must have sent for its COMMIT's reply to be cut: a batch's
#: (hundreds of records as parameters) are far above, the alert dispatcher's far below.
BATCH_TRANSACTION_BYTES = 32 * 1024
KILLS_AT = (0.25, 0.5, 0.75)

Fault = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Disturbed:
    """What a disturbed drain did: its faults, retries and final database."""

    faults: list[dict[str, Any]]
    retries: dict[str, float]
    summary: dict[str, float]
    state: dict[str, Any]
    log: str


async def drain_with_faults(
    env: dict[str, str],
    *,
    url: str,
    backlog: Backlog,
    log: Path,
    faults: Sequence[tuple[float, Fault]],
) -> Disturbed:
    """Runs a worker; at each fraction of the backlog, once a batch is open, injects a fault.

    ``url`` reaches the worker's database directly (never through a proxy).
    """
    group = env["PIPESTATUS_KAFKA__GROUP_ID"]
    progress = Progress(url, group)
    worker = WorkerProcess(env, log).start()
    injected: list[dict[str, Any]] = []
    try:
        first = await progress.wait_for((0).__lt__, worker=worker, what="the first batch")
        for fraction, fault in faults:
            target = max(round(fraction * backlog.total), first + 1)
            at = await progress.wait_for(target.__le__, worker=worker, what=f"{fraction:.0%}")
            await progress.wait_for_open_batch(worker)
            injected.append({"committed": at, **await fault()})
        await progress.wait_for(
            backlog.total.__eq__, worker=worker, what="the whole backlog", within_s=180
        )
        endpoint = worker.endpoint()
        assert endpoint is not None, worker.tail()
        prefix = "pipestatus_dependency_retries_total{dependency="
        retries = {
            name: await metric(endpoint, f'{prefix}"{name}"}}') for name in ("database", "kafka")
        }
        assert await worker.stop() == 0, worker.tail()
    finally:
        worker.ensure_dead()
        await progress.close()
    assert all(0 < fault["committed"] < backlog.total for fault in injected), injected
    state = await full_snapshot(url, backlog.topics)
    return Disturbed(injected, retries, worker.summary(), state, worker.log())


def reported(name: str, backlog: Backlog, run: Disturbed, **extra: Any) -> None:
    """Compares with the baseline (equality, table by table), then prints the line."""
    difference = assert_same_state(backlog.baseline, run.state)
    report(
        name,
        **facts(backlog, run.state),
        faults=run.faults,
        retries_from_metrics=run.retries,
        worker_records=run.summary["records"],
        **extra,
        lost=sum(difference.lost.values()),
        duplicated=sum(difference.duplicated.values()),
    )


def dropping(proxy: TcpProxy) -> Fault:
    async def drop() -> dict[str, Any]:
        dropped = proxy.drop()
        assert dropped > 0, "no connection to drop: the proxy is not in the path"
        return {"fault": "drop", "connections": dropped}

    return drop


def stalling(proxy: TcpProxy) -> Fault:
    async def stall() -> dict[str, Any]:
        held = proxy.open_connections
        assert held > 0, "no connection to stall: the proxy is not in the path"
        await proxy.stall(STALL_S)
        return {"fault": "stall", "seconds": STALL_S, "connections": held}

    return stall


def cutting_commit_reply(proxy: TcpProxy) -> Fault:
    async def cut() -> dict[str, Any]:
        withheld = await asyncio.wait_for(
            proxy.drop_at_reply(b"COMMIT", opened_by=b"BEGIN", min_bytes=BATCH_TRANSACTION_BYTES),
            60,
        )
        return {"fault": "commit_reply_cut", "reply_bytes_withheld": withheld}

    return cut


def network_faults(proxy: TcpProxy, *, commit_cuts: bool = False) -> list[tuple[float, Fault]]:
    faults = [(at, dropping(proxy)) for at in DROPS_AT]
    if commit_cuts:
        faults += [(at, cutting_commit_reply(proxy)) for at in COMMIT_CUTS_AT]
    return faults + [(at, stalling(proxy)) for at in STALLS_AT]


def through(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{proxy.address}" if credentials else proxy.address
    return urlunsplit(parts._replace(netloc=netloc))


def counts(proxy: TcpProxy) -> dict[str, int]:
    return {
        "accepted": proxy.accepted,
        "dropped": proxy.dropped,
        "stalls": proxy.stalls,
        "replies_dropped": proxy.replies_dropped,
    }


# --------------------------------------------------------------------------- database link


@pytest.mark.timeout(300)
async def test_database_connections_reset_mid_batch_and_at_commit_and_stalled(
    services: TestServices, small: Backlog, tmp_path: Path
) -> None:
    """The worker reaches PostgreSQL through the proxy: 4 resets, 2 unheard COMMITs, 2 stalls."""
    target = urlsplit(services.database_url)
    assert target.hostname is not None
    assert target.port is not None
    with temporary_database(services.database_url, prefix="pipestatus_netdb") as url:
        async with TcpProxy(target.hostname, target.port) as proxy:
            env = worker_env(
                services.kafka_bootstrap,
                f"netdb-{uuid.uuid4().hex[:8]}",
                small.topics,
                through(proxy, url),
                PIPESTATUS_KAFKA__MAX_BATCH_RECORDS=BATCH,
            )
            run = await drain_with_faults(
                env, url=url, backlog=small, log=tmp_path / "worker.log",
                faults=network_faults(proxy, commit_cuts=True),
            )  # fmt: skip
    assert run.retries["database"] > 0, "a reset mid-transaction must fail that batch once"
    # A batch whose commit went unheard is committed again: every record of it is then
    # found already applied (event claims), so the worker counts more duplicates than the
    # backlog holds, and the database still equals the baseline.
    reapplied = run.summary["duplicate"] - small.workload.summary()["duplicate"]
    assert reapplied > 0, "no batch was committed twice: the COMMIT cuts missed"
    reported(
        "database_connection_resets_commit_cuts_and_stalls",
        small,
        run,
        proxy=counts(proxy),
        found_already_applied=reapplied,
    )


# --------------------------------------------------------------------------- broker link


@pytest.mark.timeout(300)
async def test_broker_connections_reset_and_stalled_mid_batch(
    small: Backlog, database_url: str, tmp_path: Path
) -> None:
    """A Tansu of its own advertises the proxy: every broker connection crosses it."""
    listener = free_port()
    async with (
        TcpProxy(LOOPBACK, listener) as proxy,
        EmbeddedKafka(port=listener, advertised_port=proxy.port) as kafka,
    ):
        info = await asyncio.to_thread(kafka_broker_info, LOOPBACK, kafka.port)
        assert [broker[1:] for broker in info.brokers] == [(LOOPBACK, proxy.port)]
        # the same records in the same order on as many partitions: same partitions, offsets
        await create_topics(proxy.address, small.topics.values(), PARTITIONS)
        await produce_records(proxy.address, small.topics, small.records)
        env = worker_env(
            proxy.address,
            f"netkafka-{uuid.uuid4().hex[:8]}",
            small.topics,
            database_url,
            PIPESTATUS_KAFKA__MAX_BATCH_RECORDS=BATCH,
        )
        before = proxy.accepted
        run = await drain_with_faults(
            env, url=database_url, backlog=small, log=tmp_path / "worker.log",
            faults=network_faults(proxy),
        )  # fmt: skip
        worker_connections = proxy.accepted - before
    assert worker_connections > 0
    reported(
        "broker_connection_resets_and_stalls",
        small,
        run,
        proxy=counts(proxy),
        worker_connections=worker_connections,
        # aiokafka reconnects by itself: the loop sees no error, so no retry is counted
        fetch_failures_logged=run.log.count("Failed fetch messages"),
        assignments=run.log.count("partitions assigned"),
    )


# --------------------------------------------------------------------------- database crash


@pytest.mark.timeout(300)
async def test_postgres_sigkilled_mid_batch_and_restarted(
    services: TestServices, small: Backlog, tmp_path: Path
) -> None:
    """kill -9 of the postmaster while a batch is open, three times; restart on the same data."""
    async with EmbeddedPostgres() as database:

        async def crash() -> dict[str, Any]:
            began = time.monotonic()
            await asyncio.to_thread(database.kill)
            await asyncio.to_thread(database.resume)
            return {"fault": "sigkill", "down_s": round(time.monotonic() - began, 2)}

        env = worker_env(
            services.kafka_bootstrap,
            f"pgkill-{uuid.uuid4().hex[:8]}",
            small.topics,
            database.dsn,
            PIPESTATUS_KAFKA__MAX_BATCH_RECORDS=BATCH,
        )
        run = await drain_with_faults(
            env, url=database.dsn, backlog=small, log=tmp_path / "worker.log",
            faults=[(at, crash) for at in KILLS_AT],
        )  # fmt: skip
    assert run.retries["database"] > 0, "a killed server must fail the open batch"
    reported("postgres_sigkill_restart", small, run)
