"""The bench's memory figures count a consumer's helper processes, not only the consumer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipestatus_dev.bench import memory
from pipestatus_dev.bench.child import Child

#: A helper process that holds ~64 MB of touched memory until its parent goes away.
HELPER = textwrap.dedent(
    """
    import sys
    held = b"x" * (64 << 20)
    sys.stderr.write("helper ready\\n")
    sys.stderr.flush()
    sys.stdin.read()  # end of file when the parent exits
    """
)
#: A consumer stand-in: small itself, it starts the helper and waits.
PARENT = textwrap.dedent(
    f"""
    import subprocess, sys
    helper = subprocess.Popen([sys.executable, "-c", {HELPER!r}], stdin=subprocess.PIPE)
    helper.wait()
    """
)


def _wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """A shell with a child shell and two grandchildren (sleeps), in its own group."""
    proc = subprocess.Popen(
        ["sh", "-c", "sh -c 'sleep 30 & sleep 30 & wait' & sleep 30 & wait"],
        start_new_session=True,
    )
    try:
        _wait_for(lambda: len(memory.descendants(proc.pid)) >= 4)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("children_files", [True, False], ids=["task-children", "stat-scan"])
def test_descendants_are_children_and_grandchildren(
    tree: subprocess.Popen[bytes], children_files: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The project's machines' kernels have CONFIG_PROC_CHILDREN; elsewhere this case fails
    # loudly rather than skip (the stat-scan case covers the fallback everywhere).
    assert not children_files or memory.has_children_files(), "no /proc/<pid>/task/*/children"
    monkeypatch.setattr(memory, "has_children_files", lambda: children_files)
    below = memory.descendants(tree.pid)
    assert len(below) == 4  # the inner shell, its two sleeps, the outer sleep
    assert len(set(below)) == 4
    assert tree.pid not in below


def test_tree_rss_is_at_least_the_process_itself() -> None:
    own = memory.status_kb(os.getpid(), "VmRSS:")
    tree = memory.tree_rss_kb(os.getpid())
    assert own is not None
    assert tree is not None
    assert tree >= own


def test_a_process_that_is_gone_has_no_tree_rss() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert memory.tree_rss_kb(proc.pid) is None


def test_peak_rss_counts_a_helper_process(tmp_path: Path) -> None:
    """The consumer's own VmHWM misses its helper's 64 MB; the reported peak has them."""
    child = Child([sys.executable, "-c", PARENT], dict(os.environ), tmp_path / "child.log")
    try:
        _wait_for(lambda: "helper ready" in child.tail)
        _wait_for(lambda: child.tree_peak_kb - child.hwm_kb > 50 * 1024)
    finally:
        asyncio.run(child.stop(10))
    assert child.peak_rss_kb == max(child.hwm_kb, child.tree_peak_kb)
    assert child.peak_rss_kb > child.hwm_kb + 50 * 1024
    assert child.hwm_kb < 50 * 1024  # the stand-in itself stays small
