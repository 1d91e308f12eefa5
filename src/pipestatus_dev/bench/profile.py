"""py-spy, for ``--profile``: sampling a consumer, then summing up where its time went.

``start_py_spy`` samples a consumer at 100 Hz while it drains or runs the latency phase;
``summarize_profile`` aggregates py-spy's raw stacks of the main thread, and
``profile_lines`` renders that summary for the report.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipestatus_dev.bench.errors import BenchError

_LINE = re.compile(r":\d+\)$")
#: A main-thread sample whose innermost frame is one of these is the event loop waiting.
_IDLE_LEAVES = ("select (selectors.py)", "poll (selectors.py)")
#: Frames every busy sample passes through: left out of the inclusive list.
_WRAPPERS = (
    "<module> (",
    "_run_code (",
    "_run_module_as_main (",
    "main (pipestatus/cli/",
    "cmd_worker (",
    "go (pipestatus/cli/",
    "run (asyncio/runners.py)",
    "Runner.run (",
    "BaseEventLoop.run_until_complete (",
    "BaseEventLoop.run_forever (",
    "BaseEventLoop._run_once (",
    "Handle._run (",
    "_run (asyncio/events.py)",
    "run_worker (",
    "_then_set (",
)


def py_spy_command() -> str | None:
    """py-spy next to this interpreter, else on PATH; ``None`` when not installed."""
    binary = Path(sys.executable).with_name("py-spy")
    return str(binary) if binary.exists() else shutil.which("py-spy")


def start_py_spy(pid: int, path: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the consumer at 100 Hz, idle frames included."""
    command = py_spy_command()
    if command is None:
        raise BenchError("--profile needs py-spy: pip install py-spy")
    return subprocess.Popen(  # noqa: S603  # a profiler the caller asked for
        [
            command,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--idle",
            "--format",
            "raw",
            "--output",
            str(path),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Aggregates py-spy's raw (collapsed) stacks of the main thread.

    Shares are of the *busy* samples (the event loop not waiting in ``select``): where
    the CPU time of the worker goes. ``idle_share`` is of all main-thread samples.
    """
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    samples = idle = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        if frames[0].startswith("_bootstrap (threading.py"):
            continue  # other threads (executor, py-spy's view of idle helpers)
        count = int(count_text)
        samples += count
        if frames[-1].endswith(_IDLE_LEAVES):
            idle += count
            continue
        self_time[frames[-1]] += count
        for frame in dict.fromkeys(frames):
            inclusive[frame] += count
        areas[_area(frames)] += count
    busy = samples - idle
    return {
        "samples": samples,
        "busy_share": round(busy / samples, 3) if samples else None,
        "self": [(name, round(count / busy, 4)) for name, count in self_time.most_common(top)]
        if busy
        else [],
        "inclusive": [
            (name, round(count / busy, 4))
            for name, count in inclusive.most_common(top * 3)
            if not name.startswith(_WRAPPERS)
        ][:top]
        if busy
        else [],
        "areas": [(name, round(count / busy, 4)) for name, count in areas.most_common()]
        if busy
        else [],
    }


#: The innermost frame from these files decides the area a sample is charged to.
_AREAS = (
    ("pydantic/", "pydantic validation"),
    ("pydantic_core", "pydantic validation"),
    ("json/", "json decode/encode"),
    ("asyncpg/", "asyncpg (protocol, encode/decode)"),
    ("aiokafka/", "aiokafka (fetch, decode records)"),
    ("kafka/", "aiokafka (fetch, decode records)"),
    ("pipestatus/providers/", "pipestatus providers (normalize)"),
    ("pipestatus/domain/", "pipestatus domain (identity, fold)"),
    ("pipestatus/adapters/postgres.py", "pipestatus store (rows, columns)"),
    ("pipestatus/", "pipestatus other"),
    ("asyncio/", "asyncio event loop"),
    ("logging/", "logging"),
)


def _area(frames: Sequence[str]) -> str:
    for frame in reversed(frames):
        for needle, area in _AREAS:
            if needle in frame:
                return area
    return "other"


def profile_lines(profile: dict[str, Any], top: int = 15) -> list[str]:
    busy = profile.get("busy_share")
    lines = [
        f"profile (py-spy, 100 Hz, main thread): {profile['samples']:,} samples, "
        f"{100 * busy:.0f}% busy"
        if busy is not None
        else "profile: no samples",
        "  by area (share of busy samples, innermost matching frame):",
    ]
    lines += [f"    {100 * share:5.1f}%  {name}" for name, share in profile["areas"]]
    lines.append("  top functions, inclusive:")
    lines += [f"    {100 * share:5.1f}%  {name}" for name, share in profile["inclusive"][:top]]
    lines.append("  top functions, self:")
    lines += [f"    {100 * share:5.1f}%  {name}" for name, share in profile["self"][:top]]
    return lines
