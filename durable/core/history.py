"""Matching a run's ctx calls against its recorded history, by position, kind and name.

Pure: the worker hands in the events it loaded; `RunState.lookup` asks, per ctx call,
what history holds at its position, and `durable.core.decide` turns that into one
decision. This module also defines the engine's own event payloads and their codecs.
"""

from __future__ import annotations

import traceback as _tb
from collections.abc import Iterable, Sequence
from datetime import datetime

import msgspec

from durable.core.events import OP_OF_EVENT, RUN_POS, Event, OpKind
from durable.errors import NonDeterminismError

MAX_TRACEBACK = 8192
"""Characters of a formatted traceback kept with a failure; the tail (the innermost
frames and the error line) is what is kept, since that is where the bug is."""


def format_traceback(exc: BaseException, limit: int = MAX_TRACEBACK) -> str:
    """`exc` formatted as Python prints it (chained causes included), at most `limit`
    characters: longer ones keep their tail behind a `...` line. Pure (no I/O)."""
    text = "".join(_tb.format_exception(exc)).rstrip("\n")
    if len(text) <= limit:
        return text
    marker = f"... ({len(text) - limit} characters cut)\n"
    return marker + text[len(text) - limit + len(marker) :]


class StepFailure(msgspec.Struct, frozen=True):
    """Payload of a step_failed event.

    `traceback`: the attempt's formatted traceback (bounded, see `format_traceback`);
    None in histories written before it was recorded.
    """

    attempt: int
    error_type: str
    message: str
    final: bool
    retry_at: datetime | None = None
    traceback: str | None = None


class RunFailure(msgspec.Struct, frozen=True):
    """Payload of a run_failed event whose workflow code raised: the error line and the
    traceback. Other run_failed events (limits, unstorable writes) carry the error text."""

    error: str
    traceback: str | None = None


class Until(msgspec.Struct, frozen=True):
    """Payload of events that start a time-bound wait."""

    until: datetime | None


class ChildRef(msgspec.Struct, frozen=True):
    """Payload of child_started."""

    run_id: str
    workflow: str
    version: str


class ChildFailure(msgspec.Struct, frozen=True):
    """Payload of child_failed."""

    run_id: str
    cancelled: bool
    error: str | None


class History:
    """The recorded events of one run, indexed by ctx-call position."""

    __slots__ = ("_by_pos", "events", "last_seq", "terminal")

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self.events: list[Event] = []
        self._by_pos: dict[int, list[Event]] = {}
        self.last_seq = 0
        self.terminal: Event | None = None
        for event in events:
            self.add(event)

    def add(self, event: Event) -> None:
        """Index one more event; callers add in seq order."""
        self.events.append(event)
        self.last_seq = max(self.last_seq, event.seq)
        if event.pos == RUN_POS:
            self.terminal = event
            return
        bucket = self._by_pos.get(event.pos)
        if bucket is None:
            self._by_pos[event.pos] = [event]
        else:
            bucket.append(event)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def max_pos(self) -> int:
        return max(self._by_pos, default=-1)

    def at(self, pos: int, kind: OpKind, name: str) -> Sequence[Event]:
        """The events recorded for ctx call `pos`, checked against what the code now asks.

        Raises NonDeterminismError when the code asks for a different kind or name than
        the history holds at that position: replaying it would silently re-run work.
        """
        events = self._by_pos.get(pos)
        if not events:
            return ()
        first = events[0]
        found_kind = OP_OF_EVENT.get(first.kind)
        if found_kind != kind or first.name != name:
            raise NonDeterminismError(
                f"at position {pos} (event seq {first.seq}) the workflow code asked for "
                f"{kind.value} {name!r} but the history holds "
                f"{found_kind.value if found_kind else first.kind} {first.name!r}"
            )
        return events

    def peek(self, pos: int) -> Sequence[Event]:
        """The events recorded at `pos`, unchecked (a patch check looks before it takes)."""
        return self._by_pos.get(pos, ())

    def unvisited_after(self, next_pos: int) -> list[Event]:
        """Events at positions the code never reached; non-empty means code was removed."""
        return [e for p, evs in self._by_pos.items() if p >= next_pos for e in evs]


_failure_decoder = msgspec.msgpack.Decoder(StepFailure)
_until_decoder = msgspec.msgpack.Decoder(Until)
_child_decoder = msgspec.msgpack.Decoder(ChildRef)
_child_failure_decoder = msgspec.msgpack.Decoder(ChildFailure)
_encoder = msgspec.msgpack.Encoder()


def meta_encode(value: msgspec.Struct) -> bytes:
    """Encode engine metadata payloads (same tag as user payloads; see durable.codec)."""
    return b"M" + _encoder.encode(value)


def decode_failure(event: Event) -> StepFailure:
    assert event.payload is not None
    return _failure_decoder.decode(event.payload[1:])


def decode_until(event: Event) -> datetime | None:
    assert event.payload is not None
    return _until_decoder.decode(event.payload[1:]).until


def decode_child(event: Event) -> ChildRef:
    assert event.payload is not None
    return _child_decoder.decode(event.payload[1:])


def decode_child_failure(event: Event) -> ChildFailure:
    assert event.payload is not None
    return _child_failure_decoder.decode(event.payload[1:])
