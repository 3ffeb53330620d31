"""RunState: positions, seqs, limits, replaying, parking and phases. No store, no loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from durable import codec
from durable.core import decide
from durable.core.decide import LIVE, Value, Wait
from durable.core.events import RUN_POS, Event, EventKind, OpKind
from durable.core.history import History
from durable.core.state import Phase, RunAborted, RunState
from durable.errors import NonDeterminismError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(seq: int, pos: int, kind: EventKind, name: str, payload: bytes | None = None) -> Event:
    return Event(seq, pos, kind.value, name, payload, T0)


def state(*events: Event, **options: object) -> RunState:
    return RunState("r1", "wf", History(events), **options)  # type: ignore[arg-type]


HISTORY = (
    ev(1, 0, EventKind.STEP_COMPLETED, "a", codec.encode(1)),
    ev(2, 1, EventKind.TIMER_STARTED, "nap", decide.until_payload(T0)),
)


def test_positions_follow_calls_and_seqs_continue_after_history() -> None:
    st = state(*HISTORY)
    assert [st.take(), st.take(), st.take()] == [0, 1, 2]
    event = st.event(2, EventKind.STEP_COMPLETED, "b", None, T0)
    assert (event.seq, event.pos, event.kind) == (3, 2, "step_completed")
    end = st.run_event(EventKind.RUN_COMPLETED, None, T0)
    assert (end.seq, end.pos) == (4, RUN_POS)


def test_offline_replay_of_a_history_gives_the_recorded_decisions() -> None:
    # What an offline replayer does: the same calls in the same order, decisions out.
    st = state(*HISTORY)
    assert decide.step("a", st.lookup(st.take(), OpKind.STEP, "a")) == Value(1)
    assert decide.timer(st.lookup(st.take(), OpKind.SLEEP, "nap")) == Wait(T0)
    assert decide.step("b", st.lookup(st.take(), OpKind.STEP, "b")) is LIVE
    assert st.unvisited() is None and st.phase is Phase.RUNNING


def test_replaying_ends_at_the_last_recorded_position() -> None:
    assert not state().replaying  # a fresh run never replays
    st = state(*HISTORY)
    assert st.replaying
    st.lookup(st.take(), OpKind.STEP, "a")
    assert st.replaying  # position 1 (the open timer) is still ahead
    st.lookup(st.take(), OpKind.SLEEP, "nap")
    # The open wait is the last thing history knows: whatever follows it is new, so
    # log lines after the wait resumes are printed (they never were before).
    assert not st.replaying


def test_a_live_call_ends_replaying_even_before_the_last_position() -> None:
    st = state(ev(1, 1, EventKind.STEP_COMPLETED, "b", codec.encode(None)))
    assert st.replaying
    assert st.lookup(st.take(), OpKind.STEP, "a") == ()  # position 0 holds nothing
    assert not st.replaying


def test_mismatch_parks_without_a_failure_event() -> None:
    st = state(*HISTORY)
    with pytest.raises(NonDeterminismError, match=r"run 'r1' of workflow 'wf'.*step 'x'"):
        st.lookup(st.take(), OpKind.STEP, "x")
    assert st.phase is Phase.PARKED and st.halted
    assert st.failure is not None and st.failure.startswith("NonDeterminismError:")
    assert st.failure_event is False


def test_kind_mismatch_at_a_position_is_non_determinism() -> None:
    st = state(*HISTORY)
    st.take()
    with pytest.raises(NonDeterminismError, match=r"asked for step 'nap'.*holds sleep 'nap'"):
        st.lookup(st.take(), OpKind.STEP, "nap")


def test_unvisited_history_means_code_was_removed() -> None:
    st = state(*HISTORY)
    st.lookup(st.take(), OpKind.STEP, "a")
    reason = st.unvisited()
    assert reason is not None
    assert "finished without reaching history position 1 (timer_started 'nap', seq 2)" in reason
    assert st.phase is Phase.PARKED and st.failure_event is False


def test_max_events_parks_when_an_event_would_pass_the_limit() -> None:
    st = state(*HISTORY, max_events=3)
    st.event(2, EventKind.STEP_COMPLETED, "b", None, T0)
    with pytest.raises(RunAborted):
        st.event(3, EventKind.STEP_COMPLETED, "c", None, T0)
    assert st.phase is Phase.PARKED and st.failure_event
    assert st.failure == "max_events exceeded: the run reached its limit of 3 events"
    # The run's own failure event is never refused.
    assert st.run_event(EventKind.RUN_FAILED, None, T0).seq == 4


def test_max_events_is_checked_before_a_step_body_counting_attempts_in_flight() -> None:
    st = state(*HISTORY, max_events=4)
    st.begin_attempt(None)
    st.begin_attempt(None)  # two attempts in flight own seqs 3 and 4
    with pytest.raises(RunAborted):
        st.begin_attempt(None)
    assert st.failure is not None and "max_events" in st.failure


def test_an_ended_attempt_passes_its_room_to_its_event() -> None:
    st = state(max_events=1)
    st.begin_attempt(None)
    st.end_attempt()
    st.event(0, EventKind.STEP_COMPLETED, "a", None, T0)
    with pytest.raises(RunAborted):
        st.begin_attempt(None)


def test_execution_timeout_deadline() -> None:
    st = state(deadline=T0, execution_timeout=0.5)
    st.check_deadline(T0 - timedelta(seconds=1))
    assert st.phase is Phase.RUNNING
    with pytest.raises(RunAborted):
        st.begin_attempt(T0)
    assert st.failure == "execution_timeout exceeded: the run passed its limit of 0.5s"


def test_ready_at_is_the_earliest_wait_or_the_deadline() -> None:
    later = T0 + timedelta(hours=1)
    assert state().ready_at([None]) is None
    assert state().ready_at([later, None]) == later
    assert state(deadline=T0).ready_at([later]) == T0


def test_phases_only_move_forward() -> None:
    st = state()
    assert st.move(Phase.CLOSING)
    assert not st.move(Phase.RUNNING)
    assert not st.move(Phase.CLOSING)  # idempotent: a second cancel changes nothing
    # Parking while closing stops the cleanup's operations but the run stays closing.
    st.move(Phase.PARKED, "limit")
    assert st.phase is Phase.CLOSING and st.halted and st.failure == "limit"
    assert st.move(Phase.DEAD)
    assert st.phase is Phase.DEAD


def test_first_park_reason_wins_and_dead_runs_do_not_park() -> None:
    st = state()
    st.park("first")
    st.park("second", event=False)
    assert (st.failure, st.failure_event) == ("first", True)
    dead = state()
    dead.move(Phase.DEAD)
    dead.park("late")
    assert dead.failure is None and dead.halted
