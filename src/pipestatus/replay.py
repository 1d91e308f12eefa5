"""Dead-letter replay, a use case beside ``service``: today's code on yesterday's refusals.

Everything happens in one unit of work: the applied effects and the ``replayed_at``
marks commit together, so a replay interrupted halfway can simply be run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipestatus.intake import InboundRecord, Rejected, Routing, prepare
from pipestatus.ports import ReplayStore, StoredDeadLetter
from pipestatus.service import Alerting, BatchReport, apply_prepared, storable_text


@dataclass
class ReplayReport:
    applied: int = 0
    duplicate: int = 0
    stale: int = 0
    still_failing: int = 0


async def replay_dead_letters(
    store: ReplayStore,
    routing: Routing,
    *,
    ids: Sequence[int],
    reason: str | None,
    alerting: Alerting | None = None,
) -> ReplayReport:
    """Re-runs validation on open dead letters (all, or ``ids``); applies what passes."""
    summary = ReplayReport()
    async with store.unit_of_work() as uow:
        letters = await uow.open_dead_letters(ids, reason)
        prepared = [(letter, prepare(inbound_record(letter), routing)) for letter in letters]
        passing = [(letter, item) for letter, item in prepared if not isinstance(item, Rejected)]
        report = BatchReport()
        await apply_prepared(uow, [item for _, item in passing], report, alerting)
        for (letter, _item), result in zip(passing, report.results, strict=True):
            await uow.mark_replayed(letter.id, result.outcome.value)
            setattr(summary, result.outcome.value, getattr(summary, result.outcome.value) + 1)
        for letter, item in prepared:
            if isinstance(item, Rejected):
                summary.still_failing += 1
                error = item.error
                await uow.note_still_failing(
                    letter.id,
                    error.reason,
                    storable_text(error.path[:500]),
                    storable_text(error.detail[:2000]),
                )
    return summary


def inbound_record(letter: StoredDeadLetter) -> InboundRecord:
    """The record as the broker delivered it, rebuilt from its dead letter."""
    return InboundRecord(
        topic=letter.topic,
        partition=letter.partition,
        offset=letter.offset,
        key=letter.key,
        value=letter.value,
        headers=tuple(_header(h) for h in letter.headers),
    )


def _header(stored: dict[str, str]) -> tuple[str, bytes]:
    """A stored header back as bytes (the inverse of ``service._header_json``)."""
    if "key" in stored:
        name = stored["key"]
    else:
        name = bytes.fromhex(stored["key_hex"]).decode("utf-8", "surrogateescape")
    value = stored["value"].encode() if "value" in stored else bytes.fromhex(stored["hex"])
    return name, value
