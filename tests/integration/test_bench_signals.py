"""SIGTERM (or SIGINT) stops ``pipestatus bench`` and all it started: nothing is left.

The bench runs as a real process on a small backlog. Every process below it is recorded
(from ``/proc``, with its start time, so a reused pid is not mistaken for it) while it
runs; the signal goes to the bench alone once a consumer reports progress, and after the
bench exits none of the recorded processes may still be alive.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipestatus_dev.bench.memory import descendants

pytestmark = [pytest.mark.services, pytest.mark.slow]

#: Generous bounds on a shared 2-core machine; the bench itself gives consumers 5 s.
CONSUMING_WITHIN_S = 180.0
EXITS_WITHIN_S = 90.0


def _started_at(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None once it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


class Tree:
    """Every process seen below ``root`` while it runs: pid → (start time, command line)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: dict[int, tuple[str, str]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            for pid in descendants(self.root):
                if pid not in self.seen:
                    started = _started_at(pid)
                    if started is not None:
                        self.seen[pid] = (started, _name(pid))
            self._done.wait(0.05)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)

    def alive(self) -> dict[int, str]:
        return {
            pid: name for pid, (started, name) in self.seen.items() if _started_at(pid) == started
        }


@pytest.fixture
def bench() -> Iterator[tuple[subprocess.Popen[bytes], Tree, queue.Queue[str]]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipestatus_dev.bench",
            "--events",
            "5000",
            "--latency-seconds",
            "0",
            "--skip-baseline",
            "--json-only",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    tree = Tree(proc.pid)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        yield proc, tree, lines
    finally:
        tree.stop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in tree.alive():  # a failed test must not leave services behind either
            os.kill(pid, signal.SIGKILL)


def _wait_for_line(lines: queue.Queue[str], pattern: str, seen: list[str]) -> re.Match[str]:
    deadline = time.monotonic() + CONSUMING_WITHIN_S
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no line matching {pattern!r}; stderr so far:\n" + "\n".join(seen)
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_stops_the_consumers_and_the_embedded_services(
    bench: tuple[subprocess.Popen[bytes], Tree, queue.Queue[str]], signum: signal.Signals
) -> None:
    """A signal while a consumer drains: the bench soon exits 128 + signal, nothing it started
    left."""
    proc, tree, lines = bench
    seen: list[str] = []
    consumer = int(_wait_for_line(lines, r"draining the backlog with .*pid (\d+)\)", seen)[1])
    _wait_for_line(lines, r"draining… ", seen)  # partitions assigned: it is consuming
    assert consumer in tree.seen, "the consumer the bench named is not below it"
    assert len(tree.seen) >= 2, f"only {tree.seen} seen below the bench"

    proc.send_signal(signum)
    sent = time.monotonic()
    try:
        code = proc.wait(EXITS_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the bench did not exit within {EXITS_WITHIN_S:.0f}s of {signum.name}")
    took = time.monotonic() - sent
    time.sleep(0.2)  # the reader thread takes the last lines
    while not lines.empty():
        seen.append(lines.get())

    assert code == 128 + signum, "\n".join(seen[-20:])
    assert any(f"stopped by {signum.name}" in line for line in seen), "\n".join(seen[-20:])
    left = tree.alive()
    assert not left, f"still running {took:.1f}s after {signum.name}: {left}"
