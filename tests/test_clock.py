"""DatabaseClock: a lower bound of the database's clock, carried by the monotonic clock.

Pure (no database): samples are fed to `observe` by hand, as `sync` would take them.
The runtime wiring (which clock a runtime follows on which store) is checked at the end;
skew between processes sharing PostgreSQL is tests/faults/test_clock_skew.py.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from durable import Runtime
from durable.clock import SYSTEM_CLOCK, Clock, DatabaseClock, SystemClock
from durable.testing import TestRuntime
from durable.testing.runtime import VirtualClock


class Fixed(SystemClock):
    """A host's wall clock, `seconds` off the real time."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.by = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.by


def _sample(clock: DatabaseClock, db_ahead: float, trip: float = 0.002) -> None:
    """A sample of a database clock `db_ahead` seconds ahead of the real time, read in
    the middle of a round trip of `trip` seconds that ended now."""
    received = time.monotonic()
    clock.observe(
        received - trip, datetime.now(UTC) + timedelta(seconds=db_ahead - trip / 2), received
    )


def _ahead(clock: Clock) -> float:
    return (clock.now() - datetime.now(UTC)).total_seconds()


def test_before_any_sample_the_host_clock_answers() -> None:
    clock = DatabaseClock(Fixed(7.0))
    assert abs(_ahead(clock) - 7.0) < 0.1
    assert clock.skew() is None


def test_follows_the_database_and_never_runs_ahead_of_it() -> None:
    clock = DatabaseClock(Fixed(3.0))  # the host 3 s ahead of the real time
    _sample(clock, db_ahead=0.0, trip=0.01)
    ahead = _ahead(clock)
    # At most one round trip behind the database, never ahead of it.
    assert -0.011 <= ahead <= 0.0
    skew = clock.skew()
    assert skew is not None and abs(skew - 3.0) < 0.01


def test_a_tighter_sample_replaces_a_looser_one_and_not_the_reverse() -> None:
    clock = DatabaseClock(SYSTEM_CLOCK)
    _sample(clock, db_ahead=0.0, trip=0.5)
    loose = _ahead(clock)
    assert -0.51 <= loose <= -0.24  # the sample's lower bound: received - trip/2
    _sample(clock, db_ahead=0.0, trip=0.002)
    tight = _ahead(clock)
    assert tight > loose and tight >= -0.003
    _sample(clock, db_ahead=0.0, trip=0.5)  # looser again: consistent, ignored
    assert _ahead(clock) >= -0.003


def test_a_database_clock_stepped_back_is_followed_at_the_next_sample() -> None:
    clock = DatabaseClock(SYSTEM_CLOCK)
    _sample(clock, db_ahead=10.0)
    assert abs(_ahead(clock) - 10.0) < 0.01
    _sample(clock, db_ahead=0.0)  # its upper bound is below the estimate
    assert abs(_ahead(clock)) < 0.01


def test_a_host_clock_step_changes_nothing_between_samples() -> None:
    host = Fixed(0.0)
    clock = DatabaseClock(host)
    _sample(clock, db_ahead=0.0)
    host.by = timedelta(seconds=-3600)  # someone sets the host clock back an hour
    assert abs(_ahead(clock)) < 0.01


def test_skew_over_a_second_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="durable.clock")
    behind = DatabaseClock(Fixed(-2.5))
    for _ in range(3):
        _sample(behind, db_ahead=0.0)
    fine = DatabaseClock(Fixed(0.3))
    _sample(fine, db_ahead=0.0)
    messages = [r.getMessage() for r in caplog.records if r.name == "durable.clock"]
    assert len(messages) == 1
    assert "2.5" in messages[0] and "behind the database's" in messages[0]


def test_which_clock_a_runtime_follows() -> None:
    # The host's wall clock (the default, or a SystemClock subclass) is wrapped: on a
    # store with a clock of its own the runtime follows that one; the memory store has
    # none, so the wall clock keeps answering there.
    default = Runtime("memory://").clock
    assert isinstance(default, DatabaseClock) and default.base is SYSTEM_CLOCK
    skewed = Fixed(3.0)
    rt = Runtime("memory://", clock=skewed)
    assert isinstance(rt.clock, DatabaseClock) and rt.clock.base is skewed
    again = Runtime("memory://", clock=rt.clock)  # e.g. `durable worker` reusing an app's
    assert again.clock is rt.clock
    # A clock passed to control time decides it (a test's own Clock, TestRuntime's).
    mine = Clock()
    assert Runtime("memory://", clock=mine).clock is mine
    virtual = VirtualClock(datetime(2030, 1, 1, tzinfo=UTC))
    assert TestRuntime.from_config(Runtime("memory://").config, clock=virtual).clock is virtual


async def test_memory_store_keeps_the_runtime_s_own_clock() -> None:
    async with Runtime("memory://", clock=Fixed(3.0), worker=False) as rt:
        assert abs(_ahead(rt.clock) - 3.0) < 0.1
        assert rt.clock.skew() is None
