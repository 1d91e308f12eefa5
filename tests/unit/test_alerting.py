"""Alert rules over transitions (pure): fire, update, resolve exactly once, ignore late news."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipestatus.domain.alerting import (
    AlertRules,
    AlertState,
    Rule,
    dedup_key,
    evaluate,
    stuck,
)
from pipestatus.domain.machine import Transition
from pipestatus.domain.observation import Counters, Observation
from pipestatus.domain.states import ErrorCategory, Provider, RunState

T0 = datetime(2026, 7, 1, tzinfo=UTC)
RULES = AlertRules(quality_ratio=0.05)


def moved(run: str, state: RunState, minute: int, **extra) -> Transition:
    observation = Observation(
        provider=Provider.nuvo,
        run_id=run,
        pipeline_id="pipe-1",
        attempt=1,
        state=state,
        provider_status=state.value.upper(),
        occurred_at=T0 + timedelta(minutes=minute),
        error_category=ErrorCategory.parse if state is RunState.failed else None,
        error_message="bad header row" if state is RunState.failed else None,
        retryable=False if state is RunState.failed else None,
        **extra,
    )
    return Transition(RunState.running, None, 1, observation)


def fold(
    transitions: list[Transition], states: dict[str, AlertState] | None = None
) -> tuple[dict[str, AlertState], list[tuple[Rule, str, AlertState]]]:
    """Applies evaluate batch by batch, carrying state like the database does."""
    known = dict(states or {})
    actions = []
    for transition in transitions:
        for change in evaluate([transition], known, RULES, T0):
            known[change.state.dedup_key] = change.state
            if change.action:
                actions.append((change.state.rule, change.action, change.state))
    return known, actions


FAILED_KEY = dedup_key(Rule.failed, "nuvo", "pipe-1")


class TestPipelineRunFailed:
    def test_failure_fires_with_run_error_and_count(self) -> None:
        """A failed run fires PipelineRunFailed for its pipeline with the run and the error."""
        _, actions = fold([moved("r1", RunState.failed, 1)])
        [(rule, action, state)] = actions
        assert (rule, action) == (Rule.failed, "trigger")
        assert state.annotations["run_id"] == "r1"
        assert state.annotations["error_category"] == "parse"
        assert state.consecutive_failures == 1
        assert state.labels["alertname"] == "PipelineRunFailed"
        assert "run_id" not in state.labels, "per-pipeline alert: run ids stay out of labels"

    def test_consecutive_failures_count_up_then_success_resolves_once(self) -> None:
        """Failures update the count; the next success resolves once; a second success is quiet."""
        _, actions = fold(
            [
                moved("r1", RunState.failed, 1),
                moved("r2", RunState.failed, 2),
                moved("r3", RunState.succeeded, 3),
                moved("r4", RunState.succeeded, 4),
            ]
        )
        assert [(a, s.consecutive_failures) for _, a, s in actions] == [
            ("trigger", 1),
            ("trigger", 2),
            ("resolve", 0),
        ]

    def test_late_older_failure_does_not_fire_after_a_newer_success(self) -> None:
        """A failure that happened before the pipeline's latest success, reported late, is quiet."""
        _, actions = fold([moved("r2", RunState.succeeded, 5), moved("r1", RunState.failed, 1)])
        assert actions == []

    def test_late_older_success_does_not_resolve_a_newer_failure(self) -> None:
        """A success older than the firing failure does not resolve it."""
        _, actions = fold([moved("r2", RunState.failed, 5), moved("r1", RunState.succeeded, 1)])
        assert [a for _, a, _ in actions] == ["trigger"]


class TestPipelineRunStuck:
    def test_sweep_fires_and_progress_resolves(self) -> None:
        """A stuck run fires per run; its next transition resolves the alert."""
        run = moved("r9", RunState.running, 0).observation
        fired = stuck(run, T0 - timedelta(hours=3), 3600, T0)
        assert fired.action == "trigger"
        assert fired.state.labels["run_id"] == "r9"
        _, actions = fold(
            [moved("r9", RunState.succeeded, 200)], {fired.state.dedup_key: fired.state}
        )
        assert (Rule.stuck, "resolve") in [(r, a) for r, a, _ in actions]


class TestPipelineRunDataQuality:
    def test_success_with_too_many_bad_records_fires_and_clean_success_resolves(self) -> None:
        """Warnings above the ratio fire; a later clean success resolves."""
        bad = moved(
            "r1", RunState.succeeded, 1,
            warnings=("error cells: 90",), counters=Counters(quality_valid=910, quality_invalid=90),
        )  # fmt: skip
        clean = moved(
            "r2", RunState.succeeded, 2, counters=Counters(quality_valid=1000, quality_invalid=0)
        )
        _, actions = fold([bad, clean])
        quality = [
            (a, s.annotations.get("bad_ratio")) for r, a, s in actions if r is Rule.data_quality
        ]
        assert quality == [("trigger", "0.0900"), ("resolve", "0.0900")]

    def test_warnings_below_the_ratio_do_not_fire(self) -> None:
        """A few bad records under the threshold stay quiet."""
        slight = moved(
            "r1", RunState.succeeded, 1,
            warnings=("error cells: 1",), counters=Counters(quality_valid=999, quality_invalid=1),
        )  # fmt: skip
        assert fold([slight])[1] == []


def test_dedup_keys_are_stable_and_bounded() -> None:
    """The same alert always has the same key, short enough for PagerDuty (255)."""
    key = dedup_key(Rule.failed, "codat", "x" * 400)
    assert key == dedup_key(Rule.failed, "codat", "x" * 400)
    assert len(key) < 100
    assert key != dedup_key(Rule.failed, "codat", "y")
    assert isinstance(AlertState, type)
    assert FAILED_KEY.startswith("pipestatus:PipelineRunFailed:nuvo:")
