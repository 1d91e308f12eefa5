"""Alert rules (docs/architecture.md, alerts) as pure functions over transitions and alert state.

- PipelineRunFailed, per pipeline: fires when a run fails, carrying the latest run, its
  error and the consecutive-failure count; resolves when a later run of it succeeds.
- PipelineRunStuck, per run: fires when an open run made no progress for longer than
  its threshold (found by a periodic sweep); resolves on any progress or end.
- PipelineRunDataQuality, per pipeline: fires when a run succeeds with bad records above
  a ratio; resolves when a later run succeeds below it.

Provider times guard every decision, so a late, older report never fires or resolves an
alert against newer knowledge.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pipestatus.domain.machine import Transition
from pipestatus.domain.observation import Observation
from pipestatus.domain.states import RunState


class Rule(StrEnum):
    #: A run of the pipeline failed.
    failed = "PipelineRunFailed"
    #: An open run made no progress for too long.
    stuck = "PipelineRunStuck"
    #: A run succeeded with too many bad records.
    data_quality = "PipelineRunDataQuality"


SEVERITY = {Rule.failed: "error", Rule.stuck: "warning", Rule.data_quality: "warning"}
#: Where operators read what to do (docs/runbook.md in the repository).
RUNBOOK = "docs/runbook.md#"


def dedup_key(rule: Rule, provider: str, subject: str) -> str:
    """Stable, bounded (PagerDuty allows 255 characters) key for one alert."""
    digest = hashlib.sha256(f"{provider}/{subject}".encode()).hexdigest()[:24]
    return f"pipestatus:{rule.value}:{provider}:{digest}"


@dataclass(frozen=True, slots=True)
class AlertState:
    """What pipestatus knows about one alert (a row of ``alert_state``)."""

    dedup_key: str
    rule: Rule
    provider: str
    pipeline_id: str
    run_id: str | None
    firing: bool
    started_at: datetime
    consecutive_failures: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A new alert state, and the notification it needs (``None``: bookkeeping only)."""

    state: AlertState
    action: str | None  # "trigger" | "resolve" | None


@dataclass(frozen=True, slots=True)
class AlertRules:
    quality_ratio: float


def keys_for(transition: Transition) -> list[str]:
    """The alert keys a transition may touch (loaded, locked, then evaluated)."""
    o = transition.observation
    return [
        dedup_key(Rule.failed, o.provider.value, o.pipeline_id),
        dedup_key(Rule.data_quality, o.provider.value, o.pipeline_id),
        dedup_key(Rule.stuck, o.provider.value, o.run_id),
    ]


def evaluate(
    transitions: Sequence[Transition],
    states: Mapping[str, AlertState],
    rules: AlertRules,
    now: datetime,
) -> list[AlertChange]:
    """Folds a batch's transitions, in order, into alert changes."""
    current = dict(states)
    changes: list[AlertChange] = []
    for transition in transitions:
        for change in _on_transition(transition.observation, current, rules, now):
            current[change.state.dedup_key] = change.state
            changes.append(change)
    return changes


def _on_transition(
    o: Observation, states: Mapping[str, AlertState], rules: AlertRules, now: datetime
) -> list[AlertChange]:
    changes = []
    stuck = states.get(dedup_key(Rule.stuck, o.provider.value, o.run_id))
    if stuck is not None and stuck.firing:
        changes.append(_resolve(stuck, now, "the run progressed"))
    if o.state is RunState.failed:
        changes.append(_failed(o, states, now))
    elif o.state is RunState.succeeded:
        changes.extend(_succeeded(o, states, rules, now))
    return [c for c in changes if c is not None]


def _failed(o: Observation, states: Mapping[str, AlertState], now: datetime) -> AlertChange:
    key = dedup_key(Rule.failed, o.provider.value, o.pipeline_id)
    known = states.get(key) or _blank(key, Rule.failed, o, now)
    moment = o.occurred_at or now
    newer_than = known.last_failure_at
    last_failure = moment if newer_than is None or moment > newer_than else newer_than
    if known.last_success_at is not None and moment < known.last_success_at:
        # An older failure, reported late: the pipeline has succeeded since.
        return AlertChange(dataclasses.replace(known, last_failure_at=last_failure), None)
    count = known.consecutive_failures + 1
    state = dataclasses.replace(
        known,
        run_id=o.run_id,
        firing=True,
        started_at=known.started_at if known.firing else now,
        consecutive_failures=count,
        labels=_labels(Rule.failed, o),
        annotations={
            "summary": f"{o.provider.value} pipeline {o.pipeline_id} failed ({count} in a row)",
            "description": (
                f"Run {o.run_id} (attempt {o.attempt}) failed: "
                f"{o.error_category.value if o.error_category else 'unknown'}"
                f"{' — ' + o.error_message if o.error_message else ''}"
            )[:2000],
            "run_id": o.run_id,
            "error_category": o.error_category.value if o.error_category else "unknown",
            "error_message": (o.error_message or "")[:2000],
            "retryable": str(bool(o.retryable)).lower(),
            "consecutive_failures": str(count),
            "runbook_url": RUNBOOK + Rule.failed.value.lower(),
        },
        last_failure_at=last_failure,
        resolved_at=None,
    )
    return AlertChange(state, "trigger")


def _succeeded(
    o: Observation, states: Mapping[str, AlertState], rules: AlertRules, now: datetime
) -> list[AlertChange]:
    moment = o.occurred_at or now
    changes: list[AlertChange] = []
    key = dedup_key(Rule.failed, o.provider.value, o.pipeline_id)
    known = states.get(key) or _blank(key, Rule.failed, o, now)
    later = known.last_success_at is None or moment > known.last_success_at
    success = dataclasses.replace(known, last_success_at=moment if later else known.last_success_at)
    if known.firing and (known.last_failure_at is None or moment >= known.last_failure_at):
        changes.append(_resolve(dataclasses.replace(success, consecutive_failures=0), now,
                                f"run {o.run_id} succeeded"))  # fmt: skip
    elif later:
        reset = not (known.last_failure_at and known.last_failure_at > moment)
        changes.append(
            AlertChange(
                dataclasses.replace(
                    success, consecutive_failures=0 if reset else known.consecutive_failures
                ),
                None,
            )
        )
    changes.extend(_quality(o, states, rules, now))
    return changes


def bad_ratio(o: Observation) -> float | None:
    """Share of bad records a succeeded run reports (invalid values, else failed rows)."""
    c = o.counters
    if c.quality_invalid is not None and c.quality_valid is not None:
        total = c.quality_invalid + c.quality_valid
        return c.quality_invalid / total if total else None
    if c.rows_failed is not None and c.rows_in:
        return c.rows_failed / c.rows_in
    return None


def _quality(
    o: Observation, states: Mapping[str, AlertState], rules: AlertRules, now: datetime
) -> list[AlertChange]:
    key = dedup_key(Rule.data_quality, o.provider.value, o.pipeline_id)
    known = states.get(key)
    ratio = bad_ratio(o)
    moment = o.occurred_at or now
    if ratio is not None and ratio > rules.quality_ratio and o.warnings:
        base = known or _blank(key, Rule.data_quality, o, now)
        if base.last_success_at is not None and moment < base.last_success_at:
            return []
        return [
            AlertChange(
                dataclasses.replace(
                    base,
                    run_id=o.run_id,
                    firing=True,
                    started_at=base.started_at if base.firing else now,
                    labels=_labels(Rule.data_quality, o),
                    annotations={
                        "summary": f"{o.provider.value} pipeline {o.pipeline_id} succeeded "
                        f"with {ratio:.1%} bad records",
                        "description": "; ".join(o.warnings)[:2000],
                        "run_id": o.run_id,
                        "bad_ratio": f"{ratio:.4f}",
                        "threshold": f"{rules.quality_ratio:.4f}",
                        "runbook_url": RUNBOOK + Rule.data_quality.value.lower(),
                    },
                    last_success_at=moment,
                    resolved_at=None,
                ),
                "trigger",
            )
        ]
    if (
        known is not None
        and known.firing
        and (known.last_success_at is None or moment >= known.last_success_at)
    ):
        return [_resolve(dataclasses.replace(known, last_success_at=moment), now,
                         f"run {o.run_id} succeeded within the threshold")]  # fmt: skip
    if known is None or known.last_success_at is None or moment > known.last_success_at:
        # Remember the newest success, so an older one with bad records, reported late,
        # does not fire against it (as PipelineRunFailed does).
        base = known or _blank(key, Rule.data_quality, o, now)
        return [AlertChange(dataclasses.replace(base, last_success_at=moment), None)]
    return []


def stuck(
    run: Observation, progressed_at: datetime, threshold_s: float, now: datetime
) -> AlertChange:
    """The firing PipelineRunStuck alert for an open run found by the sweep."""
    key = dedup_key(Rule.stuck, run.provider.value, run.run_id)
    idle = (now - progressed_at).total_seconds()
    where = f"{run.state.value}{f' ({run.phase})' if run.phase else ''}"
    state = AlertState(
        dedup_key=key,
        rule=Rule.stuck,
        provider=run.provider.value,
        pipeline_id=run.pipeline_id,
        run_id=run.run_id,
        firing=True,
        started_at=now,
        labels=_labels(Rule.stuck, run) | {"run_id": run.run_id},
        annotations={
            "summary": f"{run.provider.value} run {run.run_id} stuck in {where}",
            "description": f"No progress for {idle / 60:.0f} min (threshold "
            f"{threshold_s / 60:.0f} min) in pipeline {run.pipeline_id}.",
            "run_id": run.run_id,
            "stuck_seconds": f"{idle:.0f}",
            "runbook_url": RUNBOOK + Rule.stuck.value.lower(),
        },
    )
    return AlertChange(state, "trigger")


def _resolve(state: AlertState, now: datetime, why: str) -> AlertChange:
    annotations = dict(state.annotations) | {"resolution": why}
    resolved = dataclasses.replace(state, firing=False, resolved_at=now, annotations=annotations)
    return AlertChange(resolved, "resolve")


def _blank(key: str, rule: Rule, o: Observation, now: datetime) -> AlertState:
    return AlertState(key, rule, o.provider.value, o.pipeline_id, None, False, now)


def _labels(rule: Rule, o: Observation) -> dict[str, str]:
    return {
        "alertname": rule.value,
        "provider": o.provider.value,
        "pipeline_id": o.pipeline_id,
        "severity": SEVERITY[rule],
    }
