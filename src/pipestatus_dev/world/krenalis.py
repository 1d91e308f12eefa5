"""Krenalis lives: pipeline-run resources from a poller.

running → ended: succeeded (with warnings when records failed), one of the termination
errors, or a pipeline error; 6- or 7-step count arrays, string or integer ids.
"""

from __future__ import annotations

from typing import Any, Final

from pipestatus.domain.states import Provider
from pipestatus_dev.world.event import Event
from pipestatus_dev.world.formats import rfc3339
from pipestatus_dev.world.rand import Rand
from pipestatus_dev.world.world import World

_KRENALIS_ERRORS: Final = (
    ("organization has been disabled", "cancelled", 0.25),
    ("pipeline has been terminated because the node became unresponsive", "failed", 0.25),
    ("an internal error has occurred", "failed", 0.2),
    (
        "transformation function raised an error: TypeError: cannot read property 'email' of null",
        "failed",
        0.3,
    ),
)


def krenalis_life(rng: Rand, world: World, start_ms: int) -> list[Event]:
    integer_ids = rng.chance(0.2)
    run_id: str | int = 609_000_000 + rng.next_serial() if integer_ids else rng.base62(12)
    which = rng.r.randrange(len(world.krenalis))
    pipeline: str | int = 705_981_207 + which if integer_ids else world.krenalis[which]
    steps = 7 if rng.chance(0.4) else 6
    events: list[Event] = []
    key = str(run_id)
    if rng.chance(0.9):
        running: dict[str, Any] = {
            "id": run_id,
            "pipeline": pipeline,
            "startTime": rfc3339(start_ms),
            "endTime": None,
            "passed": [0] * steps,
            "failed": [0] * steps,
        }
        if rng.chance(0.7):
            running["error"] = ""
        events.append(Event(start_ms, Provider.krenalis, key, running, ((key, "running", 1),)))
    end_ms = start_ms + rng.r.randrange(3_000, 1_800_000)
    received = rng.r.randrange(100, 5000)
    passed, failed = _krenalis_counts(rng, received, steps)
    error, state = "", "succeeded"
    if rng.chance(0.12):
        choices = [((text, result), weight) for text, result, weight in _KRENALIS_ERRORS]
        error, state = rng.weighted(choices)
    ended = {
        "id": run_id,
        "pipeline": pipeline,
        "startTime": rfc3339(start_ms),
        "endTime": rfc3339(end_ms),
        "passed": passed,
        "failed": failed,
        "error": error,
    }
    events.append(Event(end_ms, Provider.krenalis, key, ended, ((key, state, 1),)))
    return events


def _krenalis_counts(rng: Rand, received: int, steps: int) -> tuple[list[int], list[int]]:
    passed, failed = [], []
    remaining = received
    for _ in range(steps):
        lost = rng.r.randrange(0, max(remaining // 20, 1)) if rng.chance(0.25) else 0
        failed.append(lost)
        remaining -= lost
        passed.append(remaining)
    return passed, failed
