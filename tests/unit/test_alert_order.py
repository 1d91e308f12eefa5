"""Whether a pipeline's alerts end firing does not depend on the order its runs arrive in.

A pipeline's runs may sit in different partitions (producers key by run id), so their
order of arrival varies between deliveries. Which notifications are sent can differ (a
resolve cannot be unsent), but provider times guard every decision, so the final
firing/not-firing status of each alert must be the same for every order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings, strategies as st

from pipestatus.domain.alerting import AlertRules, AlertState, Rule, evaluate
from pipestatus.domain.machine import Transition
from pipestatus.domain.observation import Counters, Observation
from pipestatus.domain.states import ErrorCategory, Provider, RunState

T0 = datetime(2026, 7, 1, tzinfo=UTC)
RULES = AlertRules(quality_ratio=0.05)
OUTCOMES = ("failed", "clean", "bad_records")


def run(index: int, outcome: str, minute: int) -> Transition:
    failed = outcome == "failed"
    bad = outcome == "bad_records"
    observation = Observation(
        provider=Provider.nuvo,
        run_id=f"r{index}",
        pipeline_id="pipe-1",
        attempt=1,
        state=RunState.failed if failed else RunState.succeeded,
        provider_status="FAILED" if failed else "SUCCESSFUL",
        occurred_at=T0 + timedelta(minutes=minute),
        error_category=ErrorCategory.parse if failed else None,
        retryable=False if failed else None,
        warnings=("error cells: 90",) if bad else (),
        counters=Counters(quality_valid=910 if bad else 1000, quality_invalid=90 if bad else 0),
    )
    return Transition(RunState.running, None, 1, observation)


def firing(transitions: list[Transition]) -> dict[Rule, bool]:
    """Feeds the runs one batch each, carrying state like the database does."""
    known: dict[str, AlertState] = {}
    for transition in transitions:
        for change in evaluate([transition], known, RULES, T0):
            known[change.state.dedup_key] = change.state
    return {rule: any(s.firing for s in known.values() if s.rule is rule) for rule in Rule}


@settings(max_examples=300, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=6),
    order=st.randoms(use_true_random=False),
)
def test_final_firing_status_is_the_same_for_every_arrival_order(outcomes, order) -> None:
    """Runs at distinct provider times, delivered in time order and shuffled."""
    runs = [run(i, outcome, minute=10 * i) for i, outcome in enumerate(outcomes)]
    shuffled = list(runs)
    order.shuffle(shuffled)
    assert firing(shuffled) == firing(runs)


def test_a_late_older_success_with_bad_records_does_not_fire_after_a_newer_clean_one() -> None:
    """The PipelineRunDataQuality twin of the late-older-failure guard."""
    assert firing([run(2, "clean", 20), run(1, "bad_records", 10)])[Rule.data_quality] is False
    assert firing([run(1, "bad_records", 10), run(2, "clean", 20)])[Rule.data_quality] is False
