"""Pure rules of safe upgrades: patch checks, continue-as-new and cleanup payloads, and
which events a fork copies. No store, no loop."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from durable import codec
from durable.core import decide, fork
from durable.core.decide import LIVE, Value
from durable.core.events import OP_OF_EVENT, RUN_POS, Event, EventKind, OpKind
from durable.core.history import ChildFailure, ChildRef, History, StepFailure, meta_encode
from durable.core.state import RunState
from durable.errors import NonDeterminismError, ValidationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(seq: int, pos: int, kind: EventKind, name: str, payload: bytes | None = None) -> Event:
    return Event(seq, pos, kind.value, name, payload, T0)


def marker(seq: int, pos: int, patch_id: str) -> Event:
    return ev(seq, pos, EventKind.PATCH_MARKER, patch_id)


def done(seq: int, pos: int, name: str, value: object = None) -> Event:
    return ev(seq, pos, EventKind.STEP_COMPLETED, name, codec.encode(value or name))


# -- patches -----------------------------------------------------------------------------


def test_patch_marker_recorded_means_true() -> None:
    assert decide.patch("p", [marker(1, 0, "p")], past_history=False) == Value(True)


def test_patch_where_history_holds_something_else_means_false_and_no_position() -> None:
    # An old run: the old code's step sits where the new code asks the patch.
    assert decide.patch("p", [done(1, 0, "old")], past_history=False) == Value(False)
    # Another patch's marker is "something else" too.
    assert decide.patch("p", [marker(1, 0, "q")], past_history=False) == Value(False)


def test_patch_past_history_is_live_and_a_gap_inside_history_is_old() -> None:
    assert decide.patch("p", (), past_history=True) is LIVE
    # Nothing at this position, but history goes on: recorded before the patch (a
    # marker would have been durable before any later event).
    assert decide.patch("p", (), past_history=False) == Value(False)


def test_run_state_peek_does_not_take_a_position() -> None:
    st = RunState("r", "wf", History([done(1, 0, "a"), done(2, 2, "c")]))
    assert st.peek() == ([done(1, 0, "a")], False)
    assert st.next_pos == 0
    assert st.take() == 0
    assert st.peek() == ((), False)  # a gap inside history
    st.take()
    st.take()
    assert st.peek() == ((), True)  # past the end
    assert st.patches == {}


def test_removed_patch_call_is_non_determinism_at_the_marker() -> None:
    st = RunState("r", "wf", History([marker(1, 0, "p"), done(2, 1, "new")]))
    with pytest.raises(NonDeterminismError, match=r"asked for step 'new'.*holds patch 'p'"):
        st.lookup(st.take(), OpKind.STEP, "new")
    assert st.failure is not None


def test_new_event_kinds_belong_where_replay_expects() -> None:
    assert OP_OF_EVENT[EventKind.PATCH_MARKER] is OpKind.PATCH
    # Run-level events own no position: replay never matches a ctx call against them.
    for kind in (EventKind.RUN_CONTINUED, EventKind.CLEANUP_FINISHED):
        assert kind not in OP_OF_EVENT
    history = History([done(1, 0, "a"), ev(2, RUN_POS, EventKind.RUN_CONTINUED, "")])
    assert history.max_pos == 0
    assert history.terminal is not None
    assert codec.decode(decide.continued_payload("next")) == "next"
    assert codec.decode(decide.cleanup_payload("completed")) == "completed"


# -- forks -------------------------------------------------------------------------------


def failure(seq: int, pos: int, name: str, *, final: bool) -> Event:
    payload = meta_encode(StepFailure(1, "RuntimeError", "down", final, None if final else T0))
    return ev(seq, pos, EventKind.STEP_FAILED, name, payload)


HISTORY = [
    done(1, 0, "charge"),
    ev(2, 1, EventKind.RECORDED, "uuid", codec.encode("u-1")),
    ev(3, 2, EventKind.CHILD_STARTED, "part", meta_encode(ChildRef("kid-ok", "part", "1"))),
    ev(4, 3, EventKind.CHILD_STARTED, "part", meta_encode(ChildRef("kid-bad", "part", "1"))),
    ev(5, 4, EventKind.CHILD_WAITING, "part", codec.encode("kid-ok")),
    ev(6, 4, EventKind.CHILD_COMPLETED, "part", codec.encode(1)),
    ev(7, 5, EventKind.CHILD_WAITING, "part", codec.encode("kid-bad")),
    ev(8, 5, EventKind.CHILD_FAILED, "part", meta_encode(ChildFailure("kid-bad", False, "x"))),
    failure(9, 6, "ship", final=False),
    failure(10, 6, "ship", final=True),
    ev(11, RUN_POS, EventKind.RUN_FAILED, "", codec.encode("StepFailed")),
]


def test_default_fork_point_is_the_failed_step() -> None:
    assert fork.failed_step("r", HISTORY) == "ship"
    with pytest.raises(ValidationError, match="no failed step"):
        fork.failed_step("r", HISTORY[:8])


def test_cut_is_the_first_event_of_the_step() -> None:
    assert fork.cut_seq("r", HISTORY, "ship") == 9
    assert fork.cut_seq("r", HISTORY, "charge") == 1
    with pytest.raises(ValidationError, match=r"no step named 'uuid'.*\['charge', 'ship'\]"):
        fork.cut_seq("r", HISTORY, "uuid")  # a recorded value is not a step


def test_fork_events_keep_the_prefix_and_drop_unfinished_children() -> None:
    cut = fork.cut_seq("r", HISTORY, "ship")
    assert fork.children_before(HISTORY, cut) == ["kid-ok", "kid-bad"]
    events = fork.fork_events(HISTORY, cut, {"kid-bad"})
    # Seqs renumbered from 1; positions kept; the failed child's start (pos 3) and
    # result wait (pos 5) are gone, so the fork starts it again.
    assert [(e.seq, e.pos, e.kind) for e in events] == [
        (1, 0, "step_completed"),
        (2, 1, "recorded"),
        (3, 2, "child_started"),
        (4, 4, "child_waiting"),
        (5, 4, "child_completed"),
    ]
    assert fork.fork_events(HISTORY, 1, ()) == []
    # Run-level events never travel into a fork.
    assert all(e.pos != RUN_POS for e in fork.fork_events(HISTORY, 99, ()))
