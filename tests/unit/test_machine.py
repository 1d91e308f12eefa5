"""The convergence rule of DESIGN §3, by example and by property."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings, strategies as st

from pipestatus.domain.machine import Applied, Duplicate, Stale, converge, decide
from pipestatus.domain.observation import Observation
from pipestatus.domain.states import TERMINAL, Provider, RunState

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def obs(
    state: RunState,
    *,
    attempt: int = 1,
    minute: int | None = 0,
    phase: str | None = None,
    phase_rank: int = 0,
    event_id: str = "e",
) -> Observation:
    return Observation(
        provider=Provider.codat,
        run_id="run-1",
        pipeline_id="c/c/invoices",
        attempt=attempt,
        state=state,
        provider_status=state.value,
        occurred_at=None if minute is None else T0 + timedelta(minutes=minute),
        phase=phase,
        phase_rank=phase_rank,
        event_id=event_id,
    )


class TestDecide:
    def test_first_observation_is_applied_with_a_transition_from_nothing(self) -> None:
        """A run's first observation creates it with a transition from no state."""
        decision = decide(None, obs(RunState.queued))
        assert isinstance(decision, Applied)
        assert decision.transition is not None
        assert decision.transition.from_state is None
        assert decision.transition.to_state is RunState.queued

    def test_same_observation_again_is_a_duplicate(self) -> None:
        """The same observation twice has no second effect."""
        first = obs(RunState.running, event_id="a")
        assert isinstance(decide(first, first), Duplicate)

    def test_late_running_never_overwrites_a_terminal_state_of_its_attempt(self) -> None:
        """A running report that arrives after the run ended is stale, even if newer in time."""
        ended = obs(RunState.succeeded, minute=5, event_id="b")
        late = obs(RunState.running, minute=9, event_id="z")
        decision = decide(ended, late)
        assert isinstance(decision, Stale)
        assert decision.current is ended

    def test_rerun_reopens_a_terminal_run(self) -> None:
        """A higher attempt moves a failed run back to queued, with a transition."""
        failed = obs(RunState.failed, minute=5)
        rerun = obs(RunState.queued, attempt=2, minute=1)
        decision = decide(failed, rerun)
        assert isinstance(decision, Applied)
        assert decision.transition is not None
        assert (decision.transition.from_state, decision.transition.to_state) == (
            RunState.failed,
            RunState.queued,
        )

    def test_phase_change_within_running_is_a_transition(self) -> None:
        """Progress from one running phase to the next is recorded."""
        fetching = obs(RunState.running, phase="Fetching", phase_rank=1)
        mapping = obs(RunState.running, phase="Mapping", phase_rank=3, event_id="f")
        decision = decide(fetching, mapping)
        assert isinstance(decision, Applied)
        assert decision.transition is not None
        assert decision.transition.from_phase == "Fetching"

    def test_later_report_of_the_same_state_refreshes_without_a_transition(self) -> None:
        """A newer report of the same visible state updates details, writes no transition."""
        decision = decide(obs(RunState.running, minute=1), obs(RunState.running, minute=2))
        assert isinstance(decision, Applied)
        assert decision.transition is None

    def test_earlier_phase_is_stale(self) -> None:
        """A report of an earlier phase, arriving late, is stale."""
        later = obs(RunState.running, phase="Mapping", phase_rank=3)
        earlier = obs(RunState.running, phase="Fetching", phase_rank=1, minute=7, event_id="x")
        assert isinstance(decide(later, earlier), Stale)

    def test_failed_outranks_succeeded_at_the_same_moment(self) -> None:
        """Terminal precedence breaks ties: failed > cancelled > succeeded > skipped."""
        order = [RunState.skipped, RunState.succeeded, RunState.cancelled, RunState.failed]
        reports = [obs(state, event_id=str(9 - i)) for i, state in enumerate(order)]
        final, _ = converge(list(reversed(reports)))
        assert final is not None
        assert final.state is RunState.failed

    def test_queued_observation_without_timestamp_sorts_below_timestamped(self) -> None:
        """A missing provider time never beats a known one in the same rank."""
        dated = obs(RunState.queued, minute=0, event_id="a")
        undated = obs(RunState.queued, minute=None, event_id="z")
        assert isinstance(decide(dated, undated), Stale)


STATES = list(RunState)


@st.composite
def run_histories(draw: st.DrawFn) -> list[Observation]:
    """Distinct observations of one run: several attempts, phases, times and event ids."""
    count = draw(st.integers(min_value=1, max_value=12))
    seen: list[Observation] = []
    for index in range(count):
        state = draw(st.sampled_from(STATES))
        rank = draw(st.integers(0, 3)) if state is RunState.running else 0
        seen.append(
            obs(
                state,
                attempt=draw(st.integers(1, 3)),
                minute=draw(st.one_of(st.none(), st.integers(0, 5))),
                phase=f"p{rank}" if rank else None,
                phase_rank=rank,
                event_id=f"ev-{index:02d}",
            )
        )
    return seen


def _visible(observation: Observation) -> tuple[int, RunState, str | None]:
    return (observation.attempt, observation.state, observation.phase)


class TestConvergence:
    @settings(max_examples=300, deadline=None)
    @given(history=run_histories(), data=st.data())
    def test_any_permutation_and_duplication_converges_to_the_maximum(
        self, history: list[Observation], data: st.DataObject
    ) -> None:
        """Shuffled, repeated deliveries end in the same final row as one ordered delivery."""
        ordered = sorted(history, key=lambda o: o.order_key)
        delivered = data.draw(
            st.permutations(history + data.draw(st.lists(st.sampled_from(history))))
        )
        final_ordered, _ = converge(ordered)
        final_shuffled, _ = converge(list(delivered))
        assert final_shuffled == final_ordered == ordered[-1]

    @settings(max_examples=300, deadline=None)
    @given(history=run_histories(), data=st.data())
    def test_transitions_are_a_subset_of_the_ordered_history_and_never_repeat(
        self, history: list[Observation], data: st.DataObject
    ) -> None:
        """Every transition written moves the maximum up; none repeats; the last one agrees."""
        ordered = sorted(history, key=lambda o: o.order_key)
        delivered = data.draw(
            st.permutations(history + data.draw(st.lists(st.sampled_from(history))))
        )
        _, ordered_transitions = converge(ordered)
        _, shuffled_transitions = converge(list(delivered))
        keys = [t.observation.order_key for t in shuffled_transitions]
        assert keys == sorted(set(keys)), "transitions must strictly increase, no repeats"
        ordered_targets = {_visible(t.observation) for t in ordered_transitions}
        assert {_visible(t.observation) for t in shuffled_transitions} <= ordered_targets
        assert _visible(shuffled_transitions[-1].observation) == _visible(
            ordered_transitions[-1].observation
        )

    @settings(max_examples=200, deadline=None)
    @given(history=run_histories())
    def test_ordered_delivery_writes_one_transition_per_visible_change(
        self, history: list[Observation]
    ) -> None:
        """In order, each change of (attempt, state, phase) is one transition and nothing else."""
        ordered = sorted(history, key=lambda o: o.order_key)
        _, transitions = converge(ordered)
        expected = [ordered[0]] + [
            later
            for earlier, later in itertools.pairwise(ordered)
            if _visible(earlier) != _visible(later)
        ]
        assert [t.observation for t in transitions] == expected

    @settings(max_examples=200, deadline=None)
    @given(history=run_histories(), data=st.data())
    def test_each_observation_is_applied_duplicate_or_stale(
        self, history: list[Observation], data: st.DataObject
    ) -> None:
        """Repeats are duplicates or stale, never applied twice; smaller ones are stale."""
        delivered = data.draw(st.permutations(history + history))
        current: Observation | None = None
        applied: list[str] = []
        for observation in delivered:
            decision = decide(current, observation)
            if isinstance(decision, Applied):
                assert current is None or observation.order_key > current.order_key
                applied.append(observation.event_id)
                current = observation
            elif isinstance(decision, Stale):
                assert current is not None
                assert observation.order_key < current.order_key
            else:
                assert current == observation
        assert len(applied) == len(set(applied))

    @settings(max_examples=200, deadline=None)
    @given(history=run_histories(), data=st.data())
    def test_terminal_state_of_an_attempt_is_never_followed_by_running_of_it(
        self, history: list[Observation], data: st.DataObject
    ) -> None:
        """Once an attempt ended, no transition of that attempt leads back to queued/running."""
        _, transitions = converge(list(data.draw(st.permutations(history))))
        ended: set[int] = set()
        for transition in transitions:
            target = transition.observation
            if target.state in TERMINAL:
                ended.add(target.attempt)
            else:
                assert target.attempt not in ended


def test_with_event_id_keeps_every_other_field() -> None:
    """The hand-written copy in ``with_event_id`` equals ``dataclasses.replace``, field by field."""
    import dataclasses

    from pipestatus.domain.observation import Counters
    from pipestatus.domain.states import ErrorCategory

    moment = datetime(2026, 7, 1, tzinfo=UTC)
    values = {
        "provider": Provider.codat,
        "run_id": "r",
        "pipeline_id": "p",
        "attempt": 2,
        "state": RunState.failed,
        "provider_status": "FetchError",
        "occurred_at": moment,
        "phase": "fetch",
        "phase_rank": 3,
        "error_category": ErrorCategory.source,
        "error_message": "boom",
        "retryable": True,
        "warnings": ("w",),
        "counters": Counters(rows_in=5),
        "kind": "codat.pull_operation",
        "event_id": "old",
        "started_at": moment - timedelta(minutes=1),
        "ended_at": moment,
    }
    assert set(values) == {f.name for f in dataclasses.fields(Observation)}
    observation = Observation(**values)  # type: ignore[arg-type]
    assert observation.with_event_id("new") == dataclasses.replace(observation, event_id="new")
