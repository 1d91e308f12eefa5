"""The lives of the workload: one run's history each, starting every 1.5 s and overlapping."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from pipestatus_dev.world.codat import codat_pull_life, codat_read_life
from pipestatus_dev.world.event import Event
from pipestatus_dev.world.formats import T0_MS
from pipestatus_dev.world.krenalis import krenalis_life
from pipestatus_dev.world.nuvo import nuvo_life
from pipestatus_dev.world.rand import Rand
from pipestatus_dev.world.records import ExpectedRun
from pipestatus_dev.world.world import World
from pipestatus_dev.world.zoho import zoho_life

#: How often each kind of life starts (runs, not records: a Codat pull operation has
#: more records than a Krenalis run). With these weights every provider has at least
#: ~12 % of the records; see ``Workload.summary``.
LIFE_WEIGHTS: Final[tuple[tuple[str, float], ...]] = (
    ("codat_pull", 0.27),
    ("codat_read", 0.03),
    ("krenalis", 0.30),
    ("nuvo", 0.25),
    ("zoho", 0.15),
)
_LIFE_SPACING_MS: Final = 1_500
_BUILDERS: Final[dict[str, Callable[[Rand, World, int], list[Event]]]] = {
    "codat_pull": codat_pull_life,
    "codat_read": codat_read_life,
    "krenalis": krenalis_life,
    "nuvo": nuvo_life,
    "zoho": zoho_life,
}


def build_lives(rng: Rand, n_original: int) -> list[list[Event]]:
    """Lives until they hold ``n_original`` events in all."""
    world = World(rng)
    lives: list[list[Event]] = []
    total = 0
    while total < n_original:
        start = T0_MS + len(lives) * _LIFE_SPACING_MS + rng.r.randrange(1_000)
        life = _BUILDERS[rng.weighted(LIFE_WEIGHTS)](rng, world, start)
        life = life[: n_original - total]  # the last life may still be in flight
        lives.append(life)
        total += len(life)
    return lives


def expected_runs(lives: Sequence[Sequence[Event]]) -> dict[tuple[str, str], ExpectedRun]:
    """A life's events are in convergence order, so each run ends as its last report."""
    expected: dict[tuple[str, str], ExpectedRun] = {}
    for life in lives:
        for event in life:
            for run_id, state, attempt in event.runs:
                expected[(event.provider.value, run_id)] = ExpectedRun(state, attempt)
    return expected
