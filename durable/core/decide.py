"""Per-operation replay rules: the events recorded at a position in, one decision out.

Every ctx operation asks one function here what to do, given the events history holds
at its position (already checked for kind and name by `RunState.lookup`), the current
time and, for steps, the retry policy. The answer is one of a few decisions:

- `LIVE`: history has nothing: run the operation live from its start;
- `Value(v)`: the outcome is recorded: return `v`;
- `Fail(e)`: the recorded outcome is an error: raise `e`;
- `Wait(until, key)`: the operation started but has not finished (a timer set, a
  signal awaited): wait until `until` and/or a delivery on the wake key `key`;
- `Retry(attempt, at)`: a step failed and a retry is scheduled: wait until `at`, then
  run attempt `attempt` live.

Pure: no I/O, no clock (`now` is passed in), no event loop. `Context` performs what the
decision asks for; an offline replayer or a unit test can call the same functions.
Adding an operation means adding an `OpKind`, its event kinds, and one function here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from durable import codec
from durable.core.events import Event, EventKind
from durable.core.history import (
    MAX_TRACEBACK,
    ChildFailure,
    ChildRef,
    StepFailure,
    Until,
    decode_child,
    decode_child_failure,
    decode_failure,
    decode_until,
    format_traceback,
    meta_encode,
)
from durable.core.vocabulary import RunStatus, child_key
from durable.durations import parse_duration
from durable.errors import StepFailed, WorkflowCancelled, WorkflowFailed
from durable.retry import RetryPolicy

# -- decisions --------------------------------------------------------------------------


class Live:
    """History holds nothing at this position: run the operation live (a singleton)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LIVE"


LIVE: Final = Live()


class Value(msgspec.Struct, frozen=True):
    """The outcome is recorded: return `value` without running anything."""

    value: Any


class Fail(msgspec.Struct, frozen=True):
    """The recorded outcome is an error: raise `error`."""

    error: Exception


class Wait(msgspec.Struct, frozen=True):
    """Started but unfinished: wait until `until` (None: no time limit) and/or a
    delivery on the wake key `key` (None: time only), then look again."""

    until: datetime | None
    key: str | None = None


class Retry(msgspec.Struct, frozen=True):
    """A step's retry is scheduled: wait until `at`, then run attempt `attempt` live."""

    attempt: int
    at: datetime | None


Decision = Live | Value | Fail | Wait | Retry
"""What a ctx operation must do next; Context dispatches on it (ending in assert_never)."""

_NONE: Final = Value(None)
_TRUE: Final = Value(True)
_FALSE: Final = Value(False)
_STEP_COMPLETED: Final = EventKind.STEP_COMPLETED  # bound once: Enum attributes are slow

# -- deadlines: every time limit of a run is computed here --------------------------------


def after(now: datetime, seconds: float | None) -> datetime | None:
    """The deadline `seconds` after `now` (timer ends, wait timeouts, execution_timeout)."""
    if seconds is None:
        return None
    return now + timedelta(seconds=seconds)


def retry_at(policy: RetryPolicy, attempt: int, now: datetime) -> datetime:
    """When attempt `attempt + 1` of a step may start after attempt `attempt` failed."""
    return now + timedelta(seconds=policy.delay_after(attempt))


def passed(deadline: datetime | None, now: datetime) -> bool:
    """True once `now` has reached `deadline` (never for no deadline).

    Both come from the runtime's clock, which on PostgreSQL is the database's (see
    `durable.clock.DatabaseClock`): a deadline recorded by one worker is never judged
    passed early by another whose host clock runs ahead."""
    return deadline is not None and now >= deadline


def earliest(times: Sequence[datetime | None]) -> datetime | None:
    """The earliest of the given deadlines (None when there is none): a run's ready_at."""
    present = [t for t in times if t is not None]
    return min(present) if present else None


# -- steps ----------------------------------------------------------------------------


def step(name: str, events: Sequence[Event]) -> Decision:
    """A step: LIVE, its recorded result, its final failure, or a scheduled retry."""
    if not events:
        return LIVE
    last = events[-1]
    if last.kind == _STEP_COMPLETED:
        # The common case on replay (first attempt succeeded) costs one decode.
        return Value(codec.decode(last.payload))
    failure = decode_failure(last)
    if failure.final:
        return Fail(step_error(name, failure))
    return Retry(sum(1 for e in events if e.kind == EventKind.STEP_FAILED) + 1, failure.retry_at)


def step_attempt_failed(
    attempt: int, exc: BaseException, policy: RetryPolicy, now: datetime, verdict: object = True
) -> StepFailure:
    """The step_failed payload of a failed live attempt: final, or when to retry.

    The policy decides here, once; replay reads the decision back from the payload and
    never asks the policy again (a changed policy cannot change a recorded run).
    `verdict` is what the policy's `should_retry` answered for this attempt (the
    adapter calls it only when `policy.may_retry`; True when there is none): True
    (the backoff), False (final), a duration (that delay), or the exception it
    raised. An exception or an answer of any other shape fails the step finally,
    named in the message: a broken policy must not retry forever.
    """
    error_type, message = type(exc).__name__, str(exc)
    tb = format_traceback(exc)
    if not policy.may_retry(attempt, exc) or verdict is False:
        return StepFailure(attempt, error_type, message, final=True, traceback=tb)
    if verdict is True:
        return StepFailure(
            attempt,
            error_type,
            message,
            final=False,
            retry_at=retry_at(policy, attempt, now),
            traceback=tb,
        )
    if isinstance(verdict, BaseException):
        note = f"should_retry raised {type(verdict).__name__}: {verdict}"
        return StepFailure(attempt, error_type, f"{message} ({note})", final=True, traceback=tb)
    try:
        delay = parse_duration(verdict)
    except ValueError:
        note = f"should_retry returned {verdict!r}: expected True, False or a duration"
        return StepFailure(attempt, error_type, f"{message} ({note})", final=True, traceback=tb)
    return StepFailure(
        attempt,
        error_type,
        message,
        final=False,
        retry_at=now + timedelta(seconds=delay),
        traceback=tb,
    )


def step_unstorable(attempt: int, exc: BaseException) -> StepFailure:
    """A step whose result cannot be stored fails at once: a retry returns the same value."""
    return StepFailure(
        attempt, type(exc).__name__, str(exc), final=True, traceback=format_traceback(exc)
    )


def run_traceback(exc: BaseException) -> str:
    """The traceback stored with a run that failed because its code raised `exc`.

    A StepFailed replayed from history has no cause attached (the step's exception is
    long gone), so the step's recorded traceback is appended to say where it failed.
    """
    text = format_traceback(exc)
    if isinstance(exc, StepFailed) and exc.__cause__ is None and exc.traceback:
        text += f"\n\nThe step {exc.step!r} failed with:\n{exc.traceback}"
        text = text[-MAX_TRACEBACK:]
    return text


def step_error(name: str, failure: StepFailure) -> StepFailed:
    """The StepFailed a recorded (or just recorded) final failure raises."""
    return StepFailed(
        f"step {name!r} failed after {failure.attempt} attempt(s): "
        f"{failure.error_type}: {failure.message}",
        step=name,
        error_type=failure.error_type,
        error_message=failure.message,
        traceback=failure.traceback,
    )


# -- waits: timers, signals, hooks ------------------------------------------------------


def timer(events: Sequence[Event]) -> Decision:
    """A durable timer: LIVE (set it), Wait(until) while it runs, Value(None) once fired."""
    if not events:
        return LIVE
    for event in events:
        if event.kind == EventKind.TIMER_FIRED:
            return _NONE
    until = decode_until(events[0])
    assert until is not None
    return Wait(until)


def message(events: Sequence[Event], received: str, key: str) -> Decision:
    """A signal or hook wait: its payload, None after its timeout, or Wait on `key`.

    `received` is the event kind carrying the payload (signal_received/hook_received);
    any other resolving kind is the recorded timeout.
    """
    if not events:
        return LIVE
    for event in events[1:]:
        if event.kind == received:
            return Value(codec.decode(event.payload))
        return _NONE  # signal_timed_out / hook_timed_out
    return Wait(decode_until(events[0]), key)


def until_payload(until: datetime | None) -> bytes:
    """Payload of the event that starts a wait (timer_started, *_waiting)."""
    return meta_encode(Until(until))


# -- hooks, children, custom events, recorded values -----------------------------------


def recorded(events: Sequence[Event]) -> Decision:
    """Operations recorded by one event whose payload is the answer (hook token,
    recorded now/random/uuid): Value(decoded payload) or LIVE."""
    if not events:
        return LIVE
    return Value(codec.decode(events[0].payload))


def emitted(events: Sequence[Event]) -> Decision:
    """A custom event: already recorded (Value(None)) or LIVE."""
    return _NONE if events else LIVE


def child_started(events: Sequence[Event]) -> Decision:
    """A child start: Value(ChildRef) once recorded, else LIVE."""
    if not events:
        return LIVE
    return Value(decode_child(events[0]))


def child_ref(run_id: str, workflow: str, version: str) -> bytes:
    """Payload of child_started."""
    return meta_encode(ChildRef(run_id, workflow, version))


def child_result(events: Sequence[Event], name: str, run_id: str) -> Decision:
    """Waiting for a child's end: its result or error once recorded, else Wait on it."""
    if not events:
        return LIVE
    for event in events:
        if event.kind == EventKind.CHILD_COMPLETED or event.kind == EventKind.CHILD_FAILED:
            return child_end(event, name)
    return Wait(None, child_key(run_id))


def child_outcome(
    run_id: str, status: str, output: bytes | None, error: str | None
) -> tuple[EventKind, bytes | None] | None:
    """The event to record once the child's status is terminal (None: not yet)."""
    if status == RunStatus.COMPLETED:
        return EventKind.CHILD_COMPLETED, output
    if status == RunStatus.FAILED or status == RunStatus.CANCELLED:
        failure = ChildFailure(run_id, status == RunStatus.CANCELLED, error)
        return EventKind.CHILD_FAILED, meta_encode(failure)
    return None


def child_end(event: Event, name: str) -> Value | Fail:
    """A recorded child_completed/child_failed as the answer of `handle.result()`."""
    if event.kind == EventKind.CHILD_COMPLETED:
        return Value(codec.decode(event.payload))
    failure = decode_child_failure(event)
    if failure.cancelled:
        return Fail(
            WorkflowCancelled(
                f"child run {failure.run_id!r} of workflow {name!r} was cancelled",
                run_id=failure.run_id,
            )
        )
    return Fail(
        WorkflowFailed(
            f"child run {failure.run_id!r} of workflow {name!r} failed: {failure.error}",
            run_id=failure.run_id,
            error=failure.error,
        )
    )


# -- patches ------------------------------------------------------------------------------
#
# `ctx.patched(patch_id)` lets changed code keep old runs on their old path. Unlike every
# other operation it does not always take a position: a history recorded before the patch
# existed has, at that position, whatever the *old* code did next, and the old branch of
# the new code (taken because `patched` answered False) must meet exactly that event at
# exactly that position. So the check looks at the position before taking it:
#
# - the marker of this patch is recorded there: the run passed this point with the patch
#   in place; answer True and take the position (the marker owns it);
# - something else is recorded there (an old run, or a marker of another patch): answer
#   False and do NOT take the position: the next ctx call (the old branch's) takes it and
#   is matched against that event as usual;
# - nothing is recorded there and the position lies past the end of history: the run is
#   live here; record the marker (taking the position) and answer True;
# - nothing is recorded there but history goes on after it (a gap: an operation of a
#   gather that never recorded anything): the run was recorded before the patch, since a
#   marker, buffered when taken, is durable before any event recorded after it; answer
#   False without taking the position.
#
# Consequences: a marker in history whose `patched` call was removed from the code is met
# by some other operation at its position: NonDeterminismError, as for any removed
# operation. `patched` answers are memoised per patch id within one execution (a second
# call neither records nor takes a position), so asking twice is harmless.


def patch(patch_id: str, events: Sequence[Event], past_history: bool) -> Decision:
    """A patch check at the next, not yet taken, position: see the rules above.

    Returns LIVE (record the marker, take the position, answer True), `Value(True)`
    (marker recorded: take the position, answer True) or `Value(False)` (an old history:
    answer False and leave the position to the next operation).
    """
    if events:
        first = events[0]
        if first.kind == EventKind.PATCH_MARKER and first.name == patch_id:
            return _TRUE
        return _FALSE
    return LIVE if past_history else _FALSE


def continued_payload(new_run_id: str) -> bytes:
    """Payload of run_continued: the id of the run that continues this one."""
    return codec.encode(new_run_id)


def cleanup_payload(outcome: str) -> bytes:
    """Payload of cleanup_finished: how the cleanup of a cancelled run ended."""
    return codec.encode(outcome)


__all__ = [
    "LIVE",
    "Decision",
    "Fail",
    "Live",
    "Retry",
    "Value",
    "Wait",
    "after",
    "child_end",
    "child_outcome",
    "child_ref",
    "child_result",
    "child_started",
    "cleanup_payload",
    "continued_payload",
    "earliest",
    "emitted",
    "message",
    "passed",
    "patch",
    "recorded",
    "retry_at",
    "run_traceback",
    "step",
    "step_attempt_failed",
    "step_error",
    "step_unstorable",
    "timer",
    "until_payload",
]
