"""Per-operation replay decisions: history in, one decision out. No store, no loop."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from durable import codec
from durable.core import decide
from durable.core.decide import LIVE, Fail, Retry, Value, Wait
from durable.core.events import Event, EventKind
from durable.core.history import ChildFailure, ChildRef, StepFailure, Until, meta_encode
from durable.core.vocabulary import RunStatus, child_key, hook_key, signal_key
from durable.errors import StepFailed, WorkflowCancelled, WorkflowFailed
from durable.retry import RetryPolicy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(seq: int, kind: EventKind, name: str, payload: bytes | None = None, pos: int = 0) -> Event:
    return Event(seq, pos, kind.value, name, payload, T0)


def failed(attempt: int, *, final: bool, retry_at: datetime | None = None) -> Event:
    payload = meta_encode(StepFailure(attempt, "ValueError", "boom", final, retry_at))
    return ev(attempt, EventKind.STEP_FAILED, "s", payload)


# -- steps ----------------------------------------------------------------------------


def test_step_fresh_runs_live() -> None:
    assert decide.step("s", ()) is LIVE


def test_step_done_returns_the_recorded_result() -> None:
    assert decide.step("s", [ev(1, EventKind.STEP_COMPLETED, "s", codec.encode({"a": 1}))]) == (
        Value({"a": 1})
    )


def test_step_open_retry_resumes_with_next_attempt_at_recorded_time() -> None:
    at = T0 + timedelta(seconds=2)
    d = decide.step("s", [failed(1, final=False, retry_at=T0), failed(2, final=False, retry_at=at)])
    assert d == Retry(attempt=3, at=at)


def test_step_completed_after_retries_returns_value() -> None:
    events = [
        failed(1, final=False, retry_at=T0),
        ev(2, EventKind.STEP_COMPLETED, "s", codec.encode(5)),
    ]
    assert decide.step("s", events) == Value(5)


def test_step_final_failure_raises_step_failed_again() -> None:
    d = decide.step("s", [failed(1, final=False, retry_at=T0), failed(2, final=True)])
    assert isinstance(d, Fail)
    assert isinstance(d.error, StepFailed)
    assert d.error.step == "s" and d.error.error_type == "ValueError"
    assert "failed after 2 attempt(s): ValueError: boom" in str(d.error)


def test_live_attempt_failures_back_off_then_fail_finally() -> None:
    policy = RetryPolicy(max_attempts=3, initial_interval="1s", backoff_coefficient=2)
    first = decide.step_attempt_failed(1, ValueError("x"), policy, T0)
    assert (first.final, first.retry_at) == (False, T0 + timedelta(seconds=1))
    second = decide.step_attempt_failed(2, ValueError("x"), policy, T0)
    assert (second.final, second.retry_at) == (False, T0 + timedelta(seconds=2))
    third = decide.step_attempt_failed(3, ValueError("x"), policy, T0)
    assert (third.final, third.retry_at) == (True, None)
    assert (third.attempt, third.error_type, third.message) == (3, "ValueError", "x")


def test_backoff_is_capped_and_non_retryable_errors_fail_at_once() -> None:
    policy = RetryPolicy(max_attempts=10, maximum_interval="5s", non_retryable=[KeyError])
    late = decide.step_attempt_failed(8, ValueError("x"), policy, T0)
    assert late.retry_at == T0 + timedelta(seconds=5)
    assert decide.step_attempt_failed(1, KeyError("k"), policy, T0).final
    assert decide.step_unstorable(1, TypeError("no")).final


def test_should_retry_verdicts_true_false_and_durations() -> None:
    policy = RetryPolicy(max_attempts=5, initial_interval="1s", should_retry=lambda e, a: True)
    err = ValueError("x")
    backoff = decide.step_attempt_failed(2, err, policy, T0, True)
    assert (backoff.final, backoff.retry_at) == (False, T0 + timedelta(seconds=2))
    stop = decide.step_attempt_failed(1, err, policy, T0, False)
    assert (stop.final, stop.retry_at, stop.message) == (True, None, "x")
    for verdict, seconds in [("500ms", 0.5), (3, 3), (timedelta(minutes=1), 60), (0, 0)]:
        delayed = decide.step_attempt_failed(1, err, policy, T0, verdict)
        assert (delayed.final, delayed.retry_at) == (False, T0 + timedelta(seconds=seconds))


def test_should_retry_cannot_exceed_max_attempts_or_override_non_retryable() -> None:
    policy = RetryPolicy(max_attempts=2, non_retryable=[KeyError], should_retry=lambda e, a: True)
    assert decide.step_attempt_failed(2, ValueError("x"), policy, T0, "1s").final
    assert decide.step_attempt_failed(1, KeyError("k"), policy, T0, "1s").final


@pytest.mark.parametrize(
    ("verdict", "note"),
    [
        (RuntimeError("policy bug"), "should_retry raised RuntimeError: policy bug"),
        (None, "should_retry returned None: expected True, False or a duration"),
        ("soon", "should_retry returned 'soon'"),
        (-1, "should_retry returned -1"),
    ],
)
def test_broken_should_retry_fails_the_step_finally_naming_it(verdict: object, note: str) -> None:
    policy = RetryPolicy(should_retry=lambda e, a: True)
    failure = decide.step_attempt_failed(1, ValueError("boom"), policy, T0, verdict)
    assert failure.final and failure.retry_at is None
    assert failure.error_type == "ValueError"
    assert failure.message.startswith("boom (") and note in failure.message


# -- timers -----------------------------------------------------------------------------


def test_timer_fresh_open_and_fired() -> None:
    until = T0 + timedelta(minutes=1)
    started = ev(1, EventKind.TIMER_STARTED, "t", decide.until_payload(until))
    assert decide.timer(()) is LIVE
    assert decide.timer([started]) == Wait(until)
    assert decide.timer([started, ev(2, EventKind.TIMER_FIRED, "t")]) == Value(None)


# -- signals and hooks ------------------------------------------------------------------


def test_signal_fresh_waiting_received_and_timed_out() -> None:
    until = T0 + timedelta(seconds=30)
    key = signal_key("go")
    waiting = ev(1, EventKind.SIGNAL_WAITING, "go", meta_encode(Until(until)))
    received = EventKind.SIGNAL_RECEIVED
    assert decide.message((), received, key) is LIVE
    assert decide.message([waiting], received, key) == Wait(until, "s:go")
    got = ev(2, EventKind.SIGNAL_RECEIVED, "go", codec.encode([1, 2]))
    assert decide.message([waiting, got], received, key) == Value([1, 2])
    timed_out = ev(2, EventKind.SIGNAL_TIMED_OUT, "go")
    assert decide.message([waiting, timed_out], received, key) == Value(None)


def test_signal_without_timeout_waits_on_its_key_only() -> None:
    waiting = ev(1, EventKind.SIGNAL_WAITING, "go", meta_encode(Until(None)))
    assert decide.message([waiting], EventKind.SIGNAL_RECEIVED, signal_key("go")) == Wait(
        None, signal_key("go")
    )


def test_hook_created_and_waited() -> None:
    created = ev(1, EventKind.HOOK_CREATED, "approve", codec.encode("tok"))
    assert decide.recorded(()) is LIVE
    assert decide.recorded([created]) == Value("tok")
    key = hook_key("tok")
    waiting = ev(2, EventKind.HOOK_WAITING, "approve", meta_encode(Until(None)), pos=1)
    assert decide.message([waiting], EventKind.HOOK_RECEIVED, key) == Wait(None, "h:tok")
    got = ev(3, EventKind.HOOK_RECEIVED, "approve", codec.encode({"ok": True}), pos=1)
    assert decide.message([waiting, got], EventKind.HOOK_RECEIVED, key) == Value({"ok": True})
    out = ev(3, EventKind.HOOK_TIMED_OUT, "approve", pos=1)
    assert decide.message([waiting, out], EventKind.HOOK_RECEIVED, key) == Value(None)


def test_deadlines() -> None:
    assert decide.after(T0, None) is None
    assert decide.after(T0, 1.5) == T0 + timedelta(seconds=1.5)
    assert not decide.passed(None, T0)
    assert not decide.passed(T0 + timedelta(seconds=1), T0)
    assert decide.passed(T0, T0)
    assert decide.earliest([None, T0 + timedelta(seconds=2), T0]) == T0
    assert decide.earliest([None]) is None


# -- children ---------------------------------------------------------------------------


def test_child_started_replays_its_ref() -> None:
    started = ev(1, EventKind.CHILD_STARTED, "kid", decide.child_ref("c1", "kid", "2"))
    assert decide.child_started(()) is LIVE
    assert decide.child_started([started]) == Value(ChildRef("c1", "kid", "2"))


def test_child_result_waiting_completed_failed_cancelled() -> None:
    waiting = ev(1, EventKind.CHILD_WAITING, "kid", codec.encode("c1"))
    assert decide.child_result((), "kid", "c1") is LIVE
    assert decide.child_result([waiting], "kid", "c1") == Wait(None, child_key("c1"))
    done = ev(2, EventKind.CHILD_COMPLETED, "kid", codec.encode(42))
    assert decide.child_result([waiting, done], "kid", "c1") == Value(42)

    failure = ev(2, EventKind.CHILD_FAILED, "kid", meta_encode(ChildFailure("c1", False, "E: x")))
    d = decide.child_result([waiting, failure], "kid", "c1")
    assert isinstance(d, Fail) and isinstance(d.error, WorkflowFailed)
    assert d.error.run_id == "c1" and d.error.error == "E: x"

    cancel = ev(2, EventKind.CHILD_FAILED, "kid", meta_encode(ChildFailure("c1", True, None)))
    d = decide.child_result([waiting, cancel], "kid", "c1")
    assert isinstance(d, Fail) and isinstance(d.error, WorkflowCancelled)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (RunStatus.COMPLETED, EventKind.CHILD_COMPLETED),
        (RunStatus.FAILED, EventKind.CHILD_FAILED),
        (RunStatus.CANCELLED, EventKind.CHILD_FAILED),
        (RunStatus.RUNNING, None),
        (RunStatus.SUSPENDED, None),
        (RunStatus.PENDING, None),
    ],
)
def test_child_outcome_records_only_terminal_statuses(status: str, kind: EventKind | None) -> None:
    end = decide.child_outcome("c1", status, codec.encode(1), "E: x")
    if kind is None:
        assert end is None
        return
    assert end is not None and end[0] is kind
    # What is recorded decides the same answer on replay.
    d = decide.child_end(ev(2, end[0], "kid", end[1]), "kid")
    if status == RunStatus.COMPLETED:
        assert d == Value(1)
    else:
        assert isinstance(d, Fail)
        assert isinstance(d.error, WorkflowCancelled) == (status == RunStatus.CANCELLED)


# -- custom events and recorded values --------------------------------------------------


def test_custom_event_recorded_once() -> None:
    assert decide.emitted(()) is LIVE
    assert decide.emitted([ev(1, EventKind.EVENT_EMITTED, "done", codec.encode(1))]) == Value(None)


@pytest.mark.parametrize("value", [T0, 0.25, str(uuid.UUID(int=7))], ids=["now", "random", "uuid"])
def test_recorded_values_replay_exactly(value: object) -> None:
    event = ev(1, EventKind.RECORDED, "now", codec.encode(value))
    assert decide.recorded([event]) == Value(value)
