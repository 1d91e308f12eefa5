"""One batch of records, end to end: prepare (pure), then one database transaction.

The transaction holds every effect of the batch and the partitions' next offsets
(DESIGN §5), so a crash anywhere loses nothing and applies nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipestatus.domain.alerting import AlertChange, AlertRules, evaluate, keys_for
from pipestatus.domain.batch import Outcome, fold, run_key, strongest
from pipestatus.domain.machine import Transition
from pipestatus.domain.observation import Observation
from pipestatus.intake import Accepted, InboundRecord, Prepared, Rejected
from pipestatus.ports import DeadLetterRow, EventClaim, Store, TransitionSource, UnitOfWork
from pipestatus.redeliveries import RedeliveryMemo

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
    records: Sequence[InboundRecord],
    prepared: Sequence[Prepared],
    *,
    store: Store,
    group_id: str,
    alerting: Alerting | None = None,
) -> BatchReport:
    """One transaction: the batch's effects and its partitions' next offsets, or nothing."""
    started = time.perf_counter()
    report = BatchReport(next_offsets=_next_offsets(records))
    async with store.unit_of_work() as uow:
        await apply_prepared(uow, prepared, report, alerting)
        await uow.save_offsets(group_id, report.next_offsets)
    report.seconds = time.perf_counter() - started
    return report


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
        # Same transaction as the transitions: the transactional outbox (DESIGN §7).
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
        field_path=error.path[:500],
        message=error.detail[:2000],
    )


def _header_json(name: str, raw: bytes | None) -> dict[str, str]:
    try:
        return {"key": name, "value": (raw or b"").decode("utf-8")}
    except UnicodeDecodeError:
        return {"key": name, "hex": (raw or b"").hex()}


def _next_offsets(records: Sequence[InboundRecord]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        position = (record.topic, record.partition)
        offsets[position] = max(offsets.get(position, 0), record.offset + 1)
    return offsets
