"""The pools of pipelines, companies and organizations that the lives draw from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from pipestatus_dev.world.rand import Rand
from pipestatus_dev.world.zoho_pipelines import ZohoPipeline, zoho_pipeline

_COMPANY_WORDS: Final = ("Harbour", "Northwind", "Granite", "Bluebell", "Copper", "Meadow")
_COMPANY_KINDS: Final = ("Bikes Ltd", "Joinery", "Foods plc", "Logistics", "Studio", "Labs")


@dataclass(slots=True)
class CodatCompany:
    id: str
    name: str
    connections: list[str]


@dataclass
class World:
    """Pools of pipelines, companies and organizations the lives draw from."""

    rng: Rand
    zoho: list[ZohoPipeline] = field(default_factory=list)
    codat: list[CodatCompany] = field(default_factory=list)
    krenalis: list[str] = field(default_factory=list)
    nuvo: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = self.rng
        self.zoho = [zoho_pipeline(rng, index) for index in range(24)]
        self.codat = [
            CodatCompany(
                rng.uuid(),
                f"{rng.pick(_COMPANY_WORDS)} {rng.pick(_COMPANY_KINDS)}",
                [rng.uuid() for _ in range(1 + rng.r.randrange(2))],
            )
            for _ in range(300)
        ]
        self.krenalis = [rng.base62(12) for _ in range(40)]
        self.nuvo = [(rng.hexid(24), rng.hexid(24)) for _ in range(30)]
