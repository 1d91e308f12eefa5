"""The convergence rule (docs/architecture.md) as one pure function.

A run's current state is the maximum observation seen under ``Observation.order_key``.
``decide`` compares a new observation with the current maximum and returns what happens,
as a value: ``Applied`` (the maximum moved; with a ``Transition`` when the visible state
``(attempt, state, phase)`` changed), ``Duplicate`` (the same observation again) or
``Stale`` (smaller than the maximum: counted, never applied).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipestatus.domain.observation import Observation
from pipestatus.domain.states import RunState


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a run's visible state, as appended to the transition log."""

    from_state: RunState | None
    from_phase: str | None
    from_attempt: int | None
    observation: Observation

    @property
    def to_state(self) -> RunState:
        return self.observation.state


@dataclass(frozen=True, slots=True)
class Applied:
    """The observation is the run's new maximum."""

    observation: Observation
    #: ``None`` when only the details moved (a later report of the same state and phase).
    transition: Transition | None


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The observation equals the current maximum: no effect."""

    observation: Observation


@dataclass(frozen=True, slots=True)
class Stale:
    """The observation is older than the current maximum: counted, never applied."""

    observation: Observation
    current: Observation


Decision = Applied | Duplicate | Stale


def decide(current: Observation | None, new: Observation) -> Decision:
    """Decides the effect of ``new`` on a run whose maximum so far is ``current``."""
    if current is None:
        return Applied(new, Transition(None, None, None, new))
    new_key, current_key = new.order_key, current.order_key
    if new_key == current_key:
        return Duplicate(new)
    if new_key < current_key:
        return Stale(new, current)
    visible_change = (
        new.attempt != current.attempt
        or new.state is not current.state
        or new.phase != current.phase
    )
    if not visible_change:
        return Applied(new, None)
    return Applied(new, Transition(current.state, current.phase, current.attempt, new))


def converge(observations: list[Observation]) -> tuple[Observation | None, list[Transition]]:
    """Folds observations in arrival order; returns the final maximum and transitions written."""
    current: Observation | None = None
    transitions: list[Transition] = []
    for observation in observations:
        match decide(current, observation):
            case Applied(observation=applied, transition=transition):
                current = applied
                if transition is not None:
                    transitions.append(transition)
            case Duplicate() | Stale():
                pass
    return current, transitions
