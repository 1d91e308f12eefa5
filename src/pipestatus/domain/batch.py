"""Folding a batch of observations into the runs it touches (pure).

Given the runs' current maxima (read under lock) and the batch's new observations in
arrival order, ``fold`` returns the rows to upsert, the transitions to append and each
observation's outcome, so a batch costs a fixed number of database statements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pipestatus.domain.machine import Applied, Duplicate, Stale, Transition, decide
from pipestatus.domain.observation import Observation
from pipestatus.domain.states import Provider

RunKey = tuple[Provider, str]


class Outcome(StrEnum):
    """What became of one consumed record (docs/architecture.md): exactly one of these."""

    #: Moved a run's maximum (with or without a visible transition).
    applied = "applied"
    #: Seen before (same event identity, or the same observation): no effect.
    duplicate = "duplicate"
    #: Older than what the run already shows: counted, not applied.
    stale = "stale"
    #: Could not be applied as it is; stored in the dead letters.
    dead_letter = "dead_letter"


#: When one record yields several observations, the record's outcome is the strongest.
_STRENGTH = {Outcome.duplicate: 0, Outcome.stale: 1, Outcome.applied: 2}


def strongest(outcomes: Sequence[Outcome]) -> Outcome:
    # An event with nothing to observe (empty fan-out) was still processed: applied.
    return max(outcomes, key=_STRENGTH.__getitem__, default=Outcome.applied)


@dataclass
class BatchPlan:
    """Everything one batch changes about runs."""

    heads: dict[RunKey, Observation] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


def run_key(observation: Observation) -> RunKey:
    return (observation.provider, observation.run_id)


def fold(current: Mapping[RunKey, Observation], incoming: Sequence[Observation]) -> BatchPlan:
    """Applies ``incoming`` in order on top of ``current``; outcomes align with ``incoming``."""
    plan = BatchPlan()
    heads = dict(current)
    for observation in incoming:
        key = run_key(observation)
        match decide(heads.get(key), observation):
            case Applied(transition=transition):
                heads[key] = observation
                plan.heads[key] = observation
                if transition is not None:
                    plan.transitions.append(transition)
                plan.outcomes.append(Outcome.applied)
            case Duplicate():
                plan.outcomes.append(Outcome.duplicate)
            case Stale():
                plan.outcomes.append(Outcome.stale)
    return plan
