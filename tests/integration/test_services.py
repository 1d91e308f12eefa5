"""The test services themselves: what the worker relies on really works there.

Kafka: a record produced with headers comes back with them to a group consumer
that commits by hand, and a new member of the group sees that commit.
PostgreSQL: reachable, fsync on, one fresh database per test.
Also: the embedded services' lifecycle, and the errors when no path works.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipestatus_dev.embedded import (
    EmbeddedKafka,
    EmbeddedPostgres,
    EmbeddedServiceError,
    free_port,
    kafka_broker_info,
)
from pipestatus_dev.embedded.postgres import children_of, still_running
from pipestatus_dev.provision.databases import drop_database, fresh_database
from pipestatus_dev.provision.services import (
    DATABASE_ENV,
    KAFKA_ENV,
    ServicesUnavailableError,
    TestServices,
)

pytestmark = [pytest.mark.services]

# Valid on Apache Kafka too (its group.min.session.timeout.ms is 6000). Tansu holds a
# JoinGroup for about half the session timeout, so this keeps a join near 3 s.
GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def consumer(bootstrap: str, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **GROUP,
    )


async def next_record(source: AIOKafkaConsumer) -> ConsumerRecord[bytes, bytes]:
    async with asyncio.timeout(30):
        while True:
            batch = await source.getmany(timeout_ms=500, max_records=1)
            for records in batch.values():
                if records:
                    return records[0]


async def create_topic(bootstrap: str, partitions: int = 2) -> str:
    name = f"test-services-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


def test_services_come_from_a_known_path(services: TestServices) -> None:
    assert services.kafka_source in {"env", "testcontainers", "embedded"}
    assert services.database_source in {"env", "testcontainers", "embedded"}
    host, _, port = services.kafka_bootstrap.rpartition(":")
    assert host
    assert port.isdigit()
    assert services.database_url.startswith(("postgresql://", "postgres://"))
    assert len(services.notes) == 2


async def test_headers_round_trip_and_a_manual_commit_is_seen_by_the_next_member(
    services: TestServices,
) -> None:
    bootstrap = services.kafka_bootstrap
    topic = await create_topic(bootstrap)
    tp = TopicPartition(topic, 1)
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    headers = [("event-id", b"e-1"), ("content-type", b"application/json"), ("empty", b"")]

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        first = await producer.send_and_wait(
            topic, b'{"n": 1}', key=b"run-1", partition=1, headers=headers
        )

        member = consumer(bootstrap, group)
        await member.start()
        try:
            member.subscribe([topic])
            record = await next_record(member)
            assert (record.topic, record.partition, record.offset) == (topic, 1, first.offset)
            assert (record.key, record.value) == (b"run-1", b'{"n": 1}')
            assert list(record.headers) == headers
            await member.commit({tp: record.offset + 1})
            assert await member.committed(tp) == record.offset + 1
        finally:
            await member.stop()

        second = await producer.send_and_wait(topic, b'{"n": 2}', key=b"run-1", partition=1)
    finally:
        await producer.stop()

    successor = consumer(bootstrap, group)
    await successor.start()
    try:
        assert await successor.committed(tp) == first.offset + 1
        successor.subscribe([topic])
        record = await next_record(successor)
        # It resumes after the commit: the first record is not delivered again.
        assert (record.partition, record.offset, record.value) == (1, second.offset, b'{"n": 2}')
        ends = await successor.end_offsets([tp])
        assert ends[tp] == second.offset + 1
    finally:
        await successor.stop()


async def test_postgres_is_reachable_and_durable(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SELECT current_database()") == urlsplit(database_url).path[1:]
        await conn.execute("CREATE TABLE probe (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO probe VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM probe") == 1
    finally:
        await conn.close()


async def test_fresh_databases_are_separate_and_dropped(services: TestServices) -> None:
    admin = services.database_url
    first, second = fresh_database(admin), fresh_database(admin)
    assert first != second

    async def exists(url: str) -> bool:
        conn = await asyncpg.connect(admin)
        try:
            name = urlsplit(url).path[1:]
            found: int | None = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", name
            )
            return found == 1
        finally:
            await conn.close()

    try:
        assert await exists(first)
        assert await exists(second)
    finally:
        drop_database(admin, first)
        drop_database(admin, second)
    assert not await exists(first)
    drop_database(admin, second)  # dropping again is fine


async def test_embedded_kafka_lifecycle() -> None:
    kafka = EmbeddedKafka()
    async with kafka:
        info = kafka_broker_info("127.0.0.1", kafka.port)
        assert info.cluster_id == kafka.cluster_id
        assert info.brokers[0][1:] == ("127.0.0.1", kafka.port)
        assert kafka.bootstrap_servers == f"127.0.0.1:{kafka.port}"
        log = kafka.log_path
        assert log is not None
        assert log.exists()
        assert kafka.startup_seconds is not None
    assert not kafka.running
    assert not log.exists()
    kafka.stop()  # idempotent
    with pytest.raises(EmbeddedServiceError, match="cannot be started again"):
        kafka.start()
    with pytest.raises(EmbeddedServiceError, match="not running"):
        _ = kafka.bootstrap_servers


async def test_embedded_postgres_lifecycle() -> None:
    """The sync API, as a session fixture would use it."""
    pg = EmbeddedPostgres(database="pipestatus")
    pg.start()
    try:
        with pytest.raises(EmbeddedServiceError, match="already running"):
            pg.start()
        assert pg.dsn == f"postgresql://postgres@127.0.0.1:{pg.port}/pipestatus"
        if os.geteuid() == 0:
            assert pg.run_as == "nobody"

        async def settings() -> tuple[str, str, str]:
            conn = await asyncpg.connect(pg.dsn)
            try:
                row = await conn.fetchrow(
                    "SELECT current_setting('fsync'), current_setting('listen_addresses'),"
                    " current_database()"
                )
                assert row is not None
                return row[0], row[1], row[2]
            finally:
                await conn.close()

        assert await settings() == ("on", "127.0.0.1", "pipestatus")
        data_dir = pg.data_dir
        assert data_dir is not None
    finally:
        pg.stop()
    assert not data_dir.exists()
    assert not data_dir.parent.exists()
    pg.stop()
    with pytest.raises(EmbeddedServiceError, match="cannot be started again"):
        pg.start()


async def test_embedded_kafka_can_advertise_another_port() -> None:
    """For a proxy in front of it: metadata names the advertised port, not the listener."""
    advertised = free_port()
    async with EmbeddedKafka(advertised_port=advertised) as kafka:
        info = kafka_broker_info("127.0.0.1", kafka.port)
        assert info.brokers[0][1:] == ("127.0.0.1", advertised)
        assert kafka.bootstrap_servers == f"127.0.0.1:{kafka.port}"


async def test_embedded_postgres_killed_then_resumed_keeps_what_was_committed() -> None:
    """kill(): SIGKILL of the postmaster, none of its backends left; resume() recovers."""
    async with EmbeddedPostgres() as pg:
        conn = await asyncpg.connect(pg.dsn)
        await conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
        await conn.execute("BEGIN; INSERT INTO t VALUES (2)")  # left open by the crash
        postmaster = pg.pid
        assert postmaster is not None
        backends = children_of(postmaster)
        assert len(backends) >= 2  # at least the checkpointer and our connection's backend
        await asyncio.to_thread(pg.kill)
        assert not still_running(backends)
        # Whichever way asyncpg meets the dead server: a reset, a closed connection, or
        # (when the dying backend's goodbye arrived between statements) InternalClientError,
        # as map_pg_errors knows.
        broken = (OSError, asyncpg.InterfaceError, asyncpg.PostgresError,
                  asyncpg.exceptions.InternalClientError)  # fmt: skip
        with pytest.raises(broken):
            await conn.fetchval("SELECT 1", timeout=5)
        conn.terminate()
        await asyncio.to_thread(pg.resume)
        restarted = pg.pid
        assert restarted not in (None, postmaster)
        assert restarted is not None
        backends = children_of(restarted)
        conn = await asyncpg.connect(pg.dsn)
        try:
            assert [r["n"] for r in await conn.fetch("SELECT n FROM t")] == [1]
        finally:
            await conn.close()
    assert not still_running(backends)


def test_an_explicit_setting_that_does_not_answer_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KAFKA_ENV, f"127.0.0.1:{free_port()}")
    with pytest.raises(ServicesUnavailableError, match=f"tried env: {KAFKA_ENV}=") as info:
        TestServices(paths=["embedded"]).start()
    assert "unset it" in str(info.value)


def test_when_every_path_fails_the_error_lists_each_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KAFKA_ENV, raising=False)
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(ServicesUnavailableError) as info:
        TestServices(paths=["embedded"]).start()
    message = str(info.value)
    assert "No Kafka for the tests. Tried, in order:" in message
    assert f"env: {KAFKA_ENV} is not set" in message
    assert "embedded: EmbeddedServiceError: No usable Tansu broker binary" in message
