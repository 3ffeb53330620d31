"""Pure tests of history matching: history in, decisions out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from durable import codec
from durable.core.events import Event, EventKind, OpKind
from durable.core.history import (
    History,
    StepFailure,
    meta_encode,
)
from durable.errors import NonDeterminismError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(seq: int, pos: int, kind: EventKind, name: str, payload: bytes | None = None) -> Event:
    return Event(seq, pos, kind.value, name, payload, T0)


def test_matching_by_position_kind_and_name() -> None:
    h = History([ev(1, 0, EventKind.STEP_COMPLETED, "a", codec.encode(1))])
    assert len(h.at(0, OpKind.STEP, "a")) == 1
    assert h.at(1, OpKind.STEP, "b") == ()


def test_name_mismatch_raises_with_expected_and_found() -> None:
    h = History([ev(1, 0, EventKind.STEP_COMPLETED, "a", codec.encode(1))])
    with pytest.raises(NonDeterminismError, match=r"seq 1\).*step 'b'.*holds step 'a'"):
        h.at(0, OpKind.STEP, "b")


def test_kind_mismatch_raises() -> None:
    h = History(
        [ev(1, 0, EventKind.TIMER_STARTED, "nap", meta_encode(StepFailure(1, "x", "y", True)))]
    )
    with pytest.raises(NonDeterminismError, match=r"asked for step 'nap'.*holds sleep 'nap'"):
        h.at(0, OpKind.STEP, "nap")


def test_unvisited_positions_and_last_seq() -> None:
    events = [
        ev(1, 0, EventKind.TIMER_STARTED, "t", None),
        ev(2, 1, EventKind.STEP_COMPLETED, "s", codec.encode(None)),
    ]
    h = History(events)
    assert len(h.at(0, OpKind.SLEEP, "t")) == 1
    assert [e.seq for e in h.unvisited_after(1)] == [2]
    assert h.unvisited_after(2) == []
    assert h.last_seq == 2
