"""The workload's one source of randomness, seeded, with the id shapes providers use."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

_T = TypeVar("_T")


class Rand:
    """The one source of randomness: ``random.Random(seed)`` and id helpers."""

    _BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)  # noqa: S311  # a reproducible workload, not crypto
        self.serial = 0

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, items: Sequence[_T]) -> _T:
        return items[self.r.randrange(len(items))]

    def weighted(self, items: Sequence[tuple[_T, float]]) -> _T:
        total = sum(weight for _, weight in items)
        point = self.r.random() * total
        for item, weight in items:
            point -= weight
            if point < 0:
                return item
        return items[-1][0]

    def uuid(self) -> str:
        value = (self.r.getrandbits(128) & ~(0xF << 76) | (4 << 76)) & ~(0x3 << 62) | (2 << 62)
        text = f"{value:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def base62(self, length: int) -> str:
        return "".join(self.pick(self._BASE62) for _ in range(length))

    def hexid(self, length: int) -> str:
        return f"{self.r.getrandbits(4 * length):0{length}x}"

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial
