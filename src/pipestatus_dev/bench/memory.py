"""Resident memory of a consumer process and of every process below it, read from ``/proc``.

A consumer's peak RSS is the larger of two figures:

- its own ``VmHWM``, the kernel's high-water mark of its resident set, which also catches a
  peak between two samples;
- the peak of ``tree_rss_kb``: ``VmRSS`` summed over the consumer and all its descendants
  (children, their children, …), sampled every 50 ms. Helper processes (a process pool)
  hold memory of their own that the consumer's ``VmHWM`` never shows.

The sum counts a page shared by several processes (copy-on-write after ``fork``, shared
libraries) once per process, so with helpers it errs high rather than low. A process that
the consumer started but that was re-parented (its parent exited) is no longer counted.
``ru_maxrss`` is not used: on Linux it also counts the parent's resident set at fork time.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from pathlib import Path


#: ``/proc/<pid>/task/<tid>/children`` needs CONFIG_PROC_CHILDREN; without it the
#: parent of every process is read from ``/proc/<pid>/stat`` instead.
@functools.cache
def has_children_files() -> bool:
    return Path(f"/proc/self/task/{os.getpid()}/children").exists()


def status_kb(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS:``, ``VmHWM:``), if readable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_rss_kb(pid: int) -> int | None:
    """``VmRSS`` of ``pid`` plus that of all its descendants; ``None`` once ``pid`` is gone.

    A descendant that exits while it is read (or a zombie, which has no resident set)
    adds nothing.
    """
    own = status_kb(pid, "VmRSS:")
    if own is None:
        return None
    return own + sum(status_kb(child, "VmRSS:") or 0 for child in descendants(pid))


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, nearest first."""
    children_of = _children if has_children_files() else _children_by_parent().__getitem__
    found: list[int] = []
    seen = {pid}
    queue = [pid]
    while queue:
        for child in children_of(queue.pop(0)):
            if child not in seen:  # a pid reused while we walk must not loop
                seen.add(child)
                found.append(child)
                queue.append(child)
    return found


def _children(pid: int) -> list[int]:
    """Children of any thread of ``pid`` (each thread lists the ones it forked)."""
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        children.extend(int(word) for word in text.split())
    return children


def _children_by_parent() -> defaultdict[int, list[int]]:
    """parent pid → child pids, from every ``/proc/<pid>/stat``."""
    by_parent: defaultdict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may hold spaces and parentheses.
        fields = text.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1].isdigit():
            by_parent[int(fields[1])].append(int(entry))
    return by_parent
