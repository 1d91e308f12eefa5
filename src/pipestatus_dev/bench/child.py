"""A consumer subprocess as the bench runs it: its log, its memory and its CPU time.

Memory: every 50 ms, until the process exits, the consumer's ``VmHWM`` and the ``VmRSS``
summed over it and all its descendants (see ``memory``); ``peak_rss_kb`` is the larger of
the two peaks. CPU seconds are the consumer's user + system time from ``wait4``. Those
include a descendant's time only once the consumer (or one of its children) has waited for
it: a helper process that is still running, or that was never waited for, is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from pipestatus_dev.bench.errors import BenchError
from pipestatus_dev.bench.memory import status_kb, tree_rss_kb

_SAMPLE_S = 0.05


class Child:
    """A consumer subprocess: stderr read line by line, reaped with ``wait4`` for its rusage."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.started = time.monotonic()
        self.assigned_at: float | None = None
        self.exited_at: float | None = None
        self.returncode: int | None = None
        #: The consumer's own ``VmHWM``, and the peak of its process tree's summed ``VmRSS``.
        self.hwm_kb = 0
        self.tree_peak_kb = 0
        self.cpu_s = 0.0
        self.tail: list[str] = []
        self.summary_line: str | None = None
        self._exited = threading.Event()
        self._log: IO[str] = log_path.open("w", encoding="utf-8")
        self._proc = subprocess.Popen(  # noqa: S603  # our own interpreter and module
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.pid = self._proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=self._reap, daemon=True).start()
        threading.Thread(target=self._watch_memory, daemon=True).start()

    @property
    def peak_rss_kb(self) -> int:
        """Peak resident memory of the consumer and its helper processes, in kB."""
        return max(self.hwm_kb, self.tree_peak_kb)

    def _watch_memory(self) -> None:
        while not self._exited.is_set():
            hwm = status_kb(self.pid, "VmHWM:")
            if hwm is not None:
                self.hwm_kb = max(self.hwm_kb, hwm)
            tree = tree_rss_kb(self.pid)
            if tree is not None:
                self.tree_peak_kb = max(self.tree_peak_kb, tree)
            self._exited.wait(_SAMPLE_S)

    def _read(self) -> None:
        stream = self._proc.stderr
        assert stream is not None  # noqa: S101  # stderr=PIPE
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._log.write(line + "\n")
            self.tail = [*self.tail[-60:], line]
            if self.assigned_at is None and "partitions assigned" in line:
                self.assigned_at = time.monotonic()
            if " stopped records=" in line:
                self.summary_line = line
        self._log.close()

    def _reap(self) -> None:
        _, status, usage = os.wait4(self.pid, 0)
        self.exited_at = time.monotonic()
        self.returncode = os.waitstatus_to_exitcode(status)
        self._proc.returncode = self.returncode  # so Popen never waits for it again
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self._exited.set()

    @property
    def running(self) -> bool:
        return not self._exited.is_set()

    def signal(self, signum: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    async def wait(self, seconds: float) -> bool:
        exited = await asyncio.to_thread(self._exited.wait, seconds)
        if exited:
            await asyncio.to_thread(self._reader.join, 5)
        return exited

    async def stop(self, seconds: float = 30.0) -> None:
        self.signal(signal.SIGTERM)
        if not await self.wait(seconds):
            self.signal(signal.SIGKILL)
            await self.wait(10)

    def failure(self, what: str) -> BenchError:
        tail = "\n".join(f"    {line}" for line in self.tail[-25:])
        return BenchError(f"{what} (exit code {self.returncode}); log {self.log_path}:\n{tail}")
