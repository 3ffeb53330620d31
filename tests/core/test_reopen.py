"""Where a retried run resumes: the pure `retry_cut` rules."""

from __future__ import annotations

from datetime import UTC, datetime

from durable.core.events import RUN_POS, Event, EventKind
from durable.core.history import StepFailure, meta_encode
from durable.core.reopen import diverged_at, retry_cut

T = datetime(2030, 1, 1, tzinfo=UTC)


def ev(seq: int, pos: int, kind: EventKind, payload: bytes | None = None) -> Event:
    return Event(seq, pos, kind.value, "x", payload, T)


def failed(final: bool) -> bytes:
    return meta_encode(StepFailure(1, "ValueError", "boom", final))


def test_a_final_step_failure_drops_the_steps_attempts_and_run_failed() -> None:
    events = [
        ev(1, 0, EventKind.STEP_COMPLETED),
        ev(2, 1, EventKind.STEP_FAILED, failed(False)),
        ev(3, 1, EventKind.STEP_FAILED, failed(True)),
        ev(4, RUN_POS, EventKind.RUN_FAILED),
    ]
    assert retry_cut(events, "StepFailed: step 'x' failed") == [2, 3, 4]


def test_code_that_raised_drops_only_run_failed() -> None:
    events = [
        ev(1, 0, EventKind.STEP_FAILED, failed(True)),  # caught by the workflow
        ev(2, 1, EventKind.STEP_COMPLETED),
        ev(3, RUN_POS, EventKind.RUN_FAILED),
    ]
    assert retry_cut(events, "KeyError: 'x'") == [3]


def test_a_failed_child_is_looked_at_again() -> None:
    events = [
        ev(1, 0, EventKind.CHILD_STARTED),
        ev(2, 1, EventKind.CHILD_WAITING),
        ev(3, 1, EventKind.CHILD_FAILED),
        ev(4, RUN_POS, EventKind.RUN_FAILED),
    ]
    assert retry_cut(events, "WorkflowFailed: child") == [3, 4]


def test_non_determinism_drops_from_the_diverging_position() -> None:
    error = (
        "NonDeterminismError: run 'r' of workflow 'w': at position 1 (event seq 2) the "
        "workflow code asked for step 'b' but the history holds signal 'go'"
    )
    assert diverged_at(error) == 1
    events = [
        ev(1, 0, EventKind.STEP_COMPLETED),
        ev(2, 1, EventKind.SIGNAL_WAITING),
        ev(3, 2, EventKind.STEP_COMPLETED),
    ]
    assert retry_cut(events, error) == [2, 3]
    removed = (
        "NonDeterminismError: run 'r' of workflow 'w' finished without reaching history "
        "position 2 (step_completed 'c', seq 3)"
    )
    assert diverged_at(removed) == 2
    assert retry_cut(events, removed) == [3]
    assert diverged_at("ValueError: at position 1 (event seq 2)") is None
    assert diverged_at(None) is None
