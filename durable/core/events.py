"""The event vocabulary of a run's history and which operation kind each event belongs to."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class OpKind(StrEnum):
    """What a ctx call is; checked against history on replay."""

    STEP = "step"
    SLEEP = "sleep"
    SIGNAL = "signal"
    HOOK = "hook"
    HOOK_WAIT = "hook_wait"
    CHILD = "child"
    CHILD_RESULT = "child_result"
    EVENT = "event"
    RECORD = "record"
    PATCH = "patch"


class EventKind(StrEnum):
    """Kinds of history events. Documented for users in docs/concepts.md."""

    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    TIMER_STARTED = "timer_started"
    TIMER_FIRED = "timer_fired"
    SIGNAL_WAITING = "signal_waiting"
    SIGNAL_RECEIVED = "signal_received"
    SIGNAL_TIMED_OUT = "signal_timed_out"
    HOOK_CREATED = "hook_created"
    HOOK_WAITING = "hook_waiting"
    HOOK_RECEIVED = "hook_received"
    HOOK_TIMED_OUT = "hook_timed_out"
    CHILD_STARTED = "child_started"
    CHILD_WAITING = "child_waiting"
    CHILD_COMPLETED = "child_completed"
    CHILD_FAILED = "child_failed"
    EVENT_EMITTED = "event_emitted"
    RECORDED = "recorded"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    PATCH_MARKER = "patch_marker"
    RUN_CONTINUED = "run_continued"
    CLEANUP_FINISHED = "cleanup_finished"


OP_OF_EVENT: dict[str, OpKind] = {
    EventKind.STEP_COMPLETED: OpKind.STEP,
    EventKind.STEP_FAILED: OpKind.STEP,
    EventKind.TIMER_STARTED: OpKind.SLEEP,
    EventKind.TIMER_FIRED: OpKind.SLEEP,
    EventKind.SIGNAL_WAITING: OpKind.SIGNAL,
    EventKind.SIGNAL_RECEIVED: OpKind.SIGNAL,
    EventKind.SIGNAL_TIMED_OUT: OpKind.SIGNAL,
    EventKind.HOOK_CREATED: OpKind.HOOK,
    EventKind.HOOK_WAITING: OpKind.HOOK_WAIT,
    EventKind.HOOK_RECEIVED: OpKind.HOOK_WAIT,
    EventKind.HOOK_TIMED_OUT: OpKind.HOOK_WAIT,
    EventKind.CHILD_STARTED: OpKind.CHILD,
    EventKind.CHILD_WAITING: OpKind.CHILD_RESULT,
    EventKind.CHILD_COMPLETED: OpKind.CHILD_RESULT,
    EventKind.CHILD_FAILED: OpKind.CHILD_RESULT,
    EventKind.EVENT_EMITTED: OpKind.EVENT,
    EventKind.RECORDED: OpKind.RECORD,
    EventKind.PATCH_MARKER: OpKind.PATCH,
}

RUN_POS = -1
"""Position of run-level events (completion, failure, cancellation, continuation, the end
of a cancelled run's cleanup) that no ctx call owns."""


class Event(msgspec.Struct, frozen=True):
    """One history entry. `seq` orders the log; `pos` is the ctx call that produced it."""

    seq: int
    pos: int
    kind: str
    name: str
    payload: bytes | None = None
    created_at: datetime | None = None
