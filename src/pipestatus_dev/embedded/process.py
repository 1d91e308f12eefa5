"""The lifecycle of an embedded server: a child process, new -> running -> stopped, never back."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, Self, TypeVar

from pipestatus.adapters.lifecycle import AsyncClosing
from pipestatus_dev.embedded.errors import (
    EmbeddedServiceError,
)

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_LOG_TAIL_LINES = 25


def log_tail(path: Path | None, lines: int = _LOG_TAIL_LINES) -> str:
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) if tail else "    (log is empty)"


def child_env(
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


def terminate(proc: subprocess.Popen[bytes], steps: Sequence[tuple[signal.Signals, float]]) -> None:
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


@dataclass(frozen=True, slots=True)
class RunAs:
    name: str
    uid: int
    gid: int


class ExitedEarlyError(EmbeddedServiceError):
    """The child exited before it became ready."""


class EmbeddedService(AsyncClosing):
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

    async def close(self) -> None:
        """Async :meth:`stop` (in a thread); leaving ``async with`` calls it (AsyncClosing)."""
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
        run_as: RunAs | None = None,
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
                raise ExitedEarlyError(
                    f"{describe} exited with code {code} before it was ready; "
                    f"log {self._log_path}:\n{log_tail(self._log_path)}"
                )
            if ready():
                return
            if time.monotonic() >= deadline:
                raise EmbeddedServiceError(
                    f"{describe} did not become ready within {self.startup_timeout:.0f}s; "
                    f"log {self._log_path}:\n{log_tail(self._log_path)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _shutdown(self, *, failed: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, self._stop_steps())
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


def port_taken(log_path: Path | None) -> bool:
    tail = log_tail(log_path, 60).lower()
    return "in use" in tail or "addrinuse" in tail
