"""One batch of records, end to end: prepare (pure), then one database transaction.

The transaction holds every effect of the batch and the partitions' next offsets
(docs/architecture.md), so a crash anywhere loses nothing and applies nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipestatus.domain.alerting import AlertChange, AlertRules, evaluate, keys_for
from pipestatus.domain.batch import Outcome, fold, run_key, strongest
from pipestatus.domain.machine import Transition
from pipestatus.domain.observation import Observation
from pipestatus.errors import UnstorableRecordError
from pipestatus.intake import Accepted, InboundRecord, Prepared, Rejected
from pipestatus.ports import DeadLetterRow, EventClaim, Store, TransitionSource, UnitOfWork
from pipestatus.redeliveries import RedeliveryMemo

logger = logging.getLogger(__name__)

#: A dead letter keeps at most this much of an oversized value (plus its full digest).
TRUNCATED_COPY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Alerting:
    """Alert rules to evaluate on every batch, and the receivers to notify."""

    rules: AlertRules
    receivers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordResult:
    record: InboundRecord
    provider: str
    outcome: Outcome
    reason: str | None = None
    stage: str = ""
    message: str = ""


@dataclass
class BatchReport:
    """What a batch did, for metrics, logs and tests."""

    results: list[RecordResult] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    applied: list[Observation] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    alert_changes: list[AlertChange] = field(default_factory=list)
    outbox_rows: int = 0
    seconds: float = 0.0

    def counts(self) -> Counter[Outcome]:
        return Counter(result.outcome for result in self.results)


#: Records prepared between two yields to the event loop (a few milliseconds of CPU), so
#: the previous batch's transaction and the broker's fetches progress meanwhile.
PREPARE_SLICE = 16


async def prepare_batch(
    records: Sequence[InboundRecord], memo: RedeliveryMemo, *, slice_size: int = PREPARE_SLICE
) -> list[Prepared]:
    """``prepare`` for each record, in order, yielding to the event loop between slices."""
    prepared: list[Prepared] = []
    for start in range(0, len(records), slice_size):
        prepared.extend(memo.prepare(record) for record in records[start : start + slice_size])
        await asyncio.sleep(0)
    return prepared


async def commit_batch(
    prepared: Sequence[Prepared],
    *,
    store: Store,
    group_id: str,
    alerting: Alerting | None = None,
) -> BatchReport:
    """One transaction: the batch's effects and its partitions' next offsets, or nothing.

    If PostgreSQL refuses a value (``UnstorableRecordError``), the record holding it is
    found by bisection and set aside as an ``unstorable`` dead letter, and the batch is
    committed again without it, still with every offset of the batch (docs/architecture.md).
    """
    started = time.perf_counter()
    items = list(prepared)
    next_offsets = _next_offsets([item.record for item in items])
    while True:
        report = BatchReport(next_offsets=dict(next_offsets))
        try:
            async with store.unit_of_work() as uow:
                await apply_prepared(uow, items, report, alerting)
                await uow.save_offsets(group_id, next_offsets)
        except UnstorableRecordError as exc:
            items = await set_aside_unstorable(store, items, exc, alerting)
            continue
        report.seconds = time.perf_counter() - started
        return report


class _Rollback(Exception):  # noqa: N818  # control flow, not an error
    """Ends a probe transaction without committing it."""


async def _probe(
    store: Store, items: Sequence[Prepared], alerting: Alerting | None
) -> UnstorableRecordError | None:
    """Runs ``items`` in a transaction that always rolls back; the refusal, if any."""
    try:
        async with store.unit_of_work() as uow:
            await apply_prepared(uow, items, BatchReport(), alerting)
            raise _Rollback
    except _Rollback:
        return None
    except UnstorableRecordError as exc:
        return exc


async def set_aside_unstorable(
    store: Store,
    items: list[Prepared],
    error: UnstorableRecordError,
    alerting: Alerting | None = None,
) -> list[Prepared]:
    """``items`` with one more record replaced by an ``unstorable`` rejection.

    Bisects on prefixes of the records not yet set aside: the prefix of ``lo`` records
    stores, that of ``hi`` fails (all of them just failed), so record ``hi - 1`` is the
    one that tips the batch over. ``log2(n)`` probe transactions, each rolled back.
    """
    candidates = [i for i, item in enumerate(items) if not _is_unstorable(item)]
    if not candidates:
        raise error  # even the dead letters were refused: a bug to see, not to hide
    lo, hi, detail = 0, len(candidates), error.detail
    while hi - lo > 1:
        mid = (lo + hi) // 2
        refused = await _probe(store, [items[i] for i in candidates[:mid]], alerting)
        if refused is None:
            lo = mid
        else:
            hi, detail = mid, refused.detail
    index = candidates[hi - 1]
    culprit = items[index]
    record = culprit.record
    provider = culprit.parsed.provider if isinstance(culprit, Accepted) else culprit.provider
    logger.warning(
        "PostgreSQL refused record %s[%d]@%d; dead-lettered as unstorable: %s",
        record.topic, record.partition, record.offset, detail,
    )  # fmt: skip
    rejected = Rejected(record, UnstorableRecordError(detail), provider)
    return [*items[:index], rejected, *items[index + 1 :]]


def _is_unstorable(item: Prepared) -> bool:
    return isinstance(item, Rejected) and isinstance(item.error, UnstorableRecordError)


async def apply_prepared(
    uow: UnitOfWork,
    prepared: Sequence[Accepted | Rejected],
    report: BatchReport,
    alerting: Alerting | None = None,
) -> None:
    """Dedupes, folds and writes prepared records inside ``uow``; fills ``report``."""
    accepted = [item for item in prepared if isinstance(item, Accepted)]
    first_seen: dict[str, Accepted] = {}
    for item in accepted:
        first_seen.setdefault(item.event_id, item)
    claims = [
        EventClaim(e, a.parsed.provider.value, a.record.topic, a.record.partition, a.record.offset)
        for e, a in first_seen.items()
    ]
    new_ids = await uow.claim_events(claims)
    fresh = [a for e, a in first_seen.items() if e in new_ids]
    observations = [o for item in fresh for o in item.parsed.observations]
    current = await uow.lock_and_load_runs(sorted({run_key(o) for o in observations}))
    plan = fold(current, observations)
    sources = {
        a.event_id: TransitionSource(a.record.topic, a.record.partition, a.record.offset)
        for a in fresh
    }
    await uow.write_plan(plan, sources)
    if alerting is not None and plan.transitions:
        # Same transaction as the transitions: the transactional outbox
        # (docs/architecture.md, alerts).
        keys = [key for transition in plan.transitions for key in keys_for(transition)]
        states = await uow.lock_and_load_alerts(keys)
        changes = evaluate(plan.transitions, states, alerting.rules, datetime.now(UTC))
        report.alert_changes.extend(changes)
        report.outbox_rows += await uow.write_alerts(changes, alerting.receivers)
    await uow.add_dead_letters(
        [dead_letter(item) for item in prepared if isinstance(item, Rejected)]
    )

    per_event: dict[str, list[Outcome]] = {}
    for observation, outcome in zip(observations, plan.outcomes, strict=True):
        per_event.setdefault(observation.event_id, []).append(outcome)
    fresh_ids = {a.event_id for a in fresh}
    counted: set[str] = set()
    for entry in prepared:
        if isinstance(entry, Rejected):
            provider = entry.provider.value if entry.provider else "unknown"
            report.results.append(
                RecordResult(
                    entry.record,
                    provider,
                    Outcome.dead_letter,
                    entry.error.reason,
                    entry.error.stage,
                    str(entry.error),
                )
            )
            continue
        event_id = entry.event_id
        if event_id in fresh_ids and event_id not in counted:
            counted.add(event_id)
            outcome = strongest(per_event.get(event_id, []))
        else:
            outcome = Outcome.duplicate
        report.results.append(RecordResult(entry.record, entry.parsed.provider.value, outcome))
    report.transitions.extend(plan.transitions)
    report.applied.extend(plan.heads.values())


def dead_letter(item: Rejected) -> DeadLetterRow:
    """The dead-letter row for a rejected record: raw bytes kept (truncated when huge)."""
    record, error = item.record, item.error
    value = record.value
    size = len(value) if value is not None else 0
    truncated = value is not None and error.reason == "payload_too_large"
    return DeadLetterRow(
        provider=item.provider.value if item.provider else None,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=value[:TRUNCATED_COPY_BYTES] if truncated and value is not None else value,
        value_size=size,
        value_sha256=hashlib.sha256(value or b"").hexdigest(),
        truncated=truncated,
        headers=[_header_json(name, raw) for name, raw in record.headers],
        stage=error.stage,
        reason=error.reason,
        field_path=storable_text(error.path[:500]),
        message=storable_text(error.detail[:2000]),
    )


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL ``text`` takes it: NUL and lone surrogates escaped."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _header_json(name: str, raw: bytes | None) -> dict[str, str]:
    """One header for the ``jsonb`` column, whatever its bytes: text where jsonb takes it
    (valid UTF-8 without NUL), else hex (``hex`` for the value, ``key_hex`` for the name)."""
    entry = {"key": name} if text_storable(name) else {"key_hex": _name_bytes(name).hex()}
    value = raw or b""
    if b"\x00" not in value:
        try:
            entry["value"] = value.decode("utf-8")
            return entry
        except UnicodeDecodeError:
            pass
    entry["hex"] = value.hex()
    return entry


def text_storable(text: str) -> bool:
    """Whether PostgreSQL text and jsonb can hold ``text``: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _name_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _next_offsets(records: Sequence[InboundRecord]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        position = (record.topic, record.partition)
        offsets[position] = max(offsets.get(position, 0), record.offset + 1)
    return offsets
