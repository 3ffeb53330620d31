"""Which part of a run's history a fork copies: the cut at a step, children to restart.

Pure: the runtime loads the original's events and its children's statuses, asks here
which events the fork starts with, and writes them with the new run in one store call.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from durable import codec
from durable.core.events import OP_OF_EVENT, RUN_POS, Event, EventKind, OpKind
from durable.core.history import decode_child, decode_child_failure, decode_failure
from durable.errors import ValidationError


def failed_step(run_id: str, events: Sequence[Event]) -> str:
    """The step whose final failure failed the run (the default fork point)."""
    for event in reversed(events):
        if event.kind == EventKind.STEP_FAILED and decode_failure(event).final:
            return event.name
    raise ValidationError(
        f"run {run_id!r} has no failed step to fork from: name one with at=STEP (--at STEP)"
    )


def cut_seq(run_id: str, events: Sequence[Event], at: str) -> int:
    """The seq of the first event of step `at`: the fork keeps what came before it."""
    for event in events:
        if event.name == at and OP_OF_EVENT.get(event.kind) is OpKind.STEP:
            return event.seq
    steps = list(dict.fromkeys(e.name for e in events if OP_OF_EVENT.get(e.kind) is OpKind.STEP))
    raise ValidationError(
        f"run {run_id!r} has no step named {at!r} in its history (its steps: {steps})"
    )


def children_before(events: Sequence[Event], cut: int) -> list[str]:
    """Ids of the children started before the cut (whose status decides reuse)."""
    return [
        decode_child(e).run_id for e in events if e.seq < cut and e.kind == EventKind.CHILD_STARTED
    ]


def _child_of(event: Event) -> str | None:
    """The child run an event of a child operation is about (None for other events)."""
    if event.kind == EventKind.CHILD_STARTED:
        return decode_child(event).run_id
    if event.kind == EventKind.CHILD_WAITING:
        child = codec.decode(event.payload)
        return child if isinstance(child, str) else None
    if event.kind == EventKind.CHILD_FAILED:
        return decode_child_failure(event).run_id
    return None


def fork_events(events: Sequence[Event], cut: int, restart: Collection[str]) -> list[Event]:
    """The fork's history: every event before `cut`, run-level events excepted, without
    the positions of children in `restart` (their start and the wait for their result),
    which then run live in the fork and start new children. Seqs are renumbered from 1;
    positions are kept, so the code meets each kept event where it was recorded."""
    kept = [e for e in events if e.seq < cut and e.pos != RUN_POS]
    dropped: set[int] = set()
    for event in kept:
        if _child_of(event) in restart:
            dropped.add(event.pos)
    out: list[Event] = []
    for event in kept:
        if event.pos in dropped:
            continue
        out.append(
            Event(len(out) + 1, event.pos, event.kind, event.name, event.payload, event.created_at)
        )
    return out


__all__ = ["children_before", "cut_seq", "failed_step", "fork_events"]
