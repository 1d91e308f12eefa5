"""The delivery order: event-time order, then late deliveries, duplicates and invalid records.

Records are delivered in event-time order, keyed by run id (so one run stays in one
partition). Some pairs of consecutive events of one life then swap places (the earlier one
arrives late); duplicates are exact re-deliveries of an earlier valid record, 1 to ~2000
records after it; invalid records land anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from pipestatus_dev.world.event import Event
from pipestatus_dev.world.invalid import invalid_record
from pipestatus_dev.world.rand import Rand
from pipestatus_dev.world.records import BenchRecord

_MAX_DUPLICATE_DISTANCE: Final = 2_000

Slot = tuple[int, int]  # (life, step)


def deliver(
    rng: Rand, lives: Sequence[Sequence[Event]], *, late: int, duplicates: int, invalid: int
) -> list[BenchRecord]:
    """Every event of ``lives`` once, ``late`` of them late, plus the extra records."""
    order = _delivery_order(lives)
    late_slots = _reorder(rng, lives, order, late)

    position = {slot: index for index, slot in enumerate(order)}
    placed: list[tuple[float, int, BenchRecord]] = []
    originals: list[tuple[int, BenchRecord]] = []
    for life_index, life in enumerate(lives):
        for step, event in enumerate(life):
            record = event.record("original", life_index, step, (life_index, step) in late_slots)
            pos = position[(life_index, step)]
            placed.append((float(pos), 0, record))
            originals.append((pos, record))
    originals.sort(key=lambda item: item[0])
    for index in range(duplicates):
        pos, original = originals[rng.r.randrange(len(originals))]
        distance = int(math.exp(rng.r.uniform(0.0, math.log(_MAX_DUPLICATE_DISTANCE))))
        copy = BenchRecord(
            original.provider,
            original.key,
            original.value,
            original.headers,
            "duplicate",
            original.life,
            original.step,
        )
        placed.append((pos + distance + 0.5, 1 + index, copy))
    placed.extend(
        (rng.r.uniform(0, max(len(order), 1)), 1 + duplicates + index, invalid_record(rng))
        for index in range(invalid)
    )
    placed.sort(key=lambda item: (item[0], item[1]))
    return [record for _, _, record in placed]


def _delivery_order(lives: Sequence[Sequence[Event]]) -> list[Slot]:
    slots = [
        (event.at_ms, life_index, step)
        for life_index, life in enumerate(lives)
        for step, event in enumerate(life)
    ]
    slots.sort()
    return [(life_index, step) for _, life_index, step in slots]


def _reorder(
    rng: Rand, lives: Sequence[Sequence[Event]], order: list[Slot], wanted: int
) -> set[Slot]:
    """Swaps ``wanted`` disjoint pairs of consecutive events; returns the late ones."""
    pairs = [
        (life_index, step) for life_index, life in enumerate(lives) for step in range(len(life) - 1)
    ]
    rng.r.shuffle(pairs)
    used: set[Slot] = set()
    late: set[Slot] = set()
    position = {slot: index for index, slot in enumerate(order)}
    for life_index, step in pairs:
        if len(late) >= wanted:
            break
        first, second = (life_index, step), (life_index, step + 1)
        if first in used or second in used:
            continue
        used.update((first, second))
        a, b = position[first], position[second]
        order[a], order[b] = second, first
        position[first], position[second] = b, a
        late.add(first)
    return late
