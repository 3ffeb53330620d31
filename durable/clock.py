"""The one source of wall-clock time, so tests and deadlines never mix two clocks.

Several processes share one PostgreSQL database, and their hosts' clocks need not
agree: a worker 3 s ahead with a 2 s lease saw every other worker's lease as expired
and every 2 s timer as already due (issue 16, item 3). So a runtime on such a store
does not use its host's clock (`SystemClock`, the default) for anything it passes to
the store or decides from: `DatabaseClock` follows the database's clock (sampled now
and then, carried forward by this process's monotonic clock) and uses the host's clock
only to measure its skew. A clock passed on purpose (TestRuntime's virtual clock, a
test's own `Clock` subclass) is `authoritative` and is used as is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ClassVar

log = logging.getLogger("durable.clock")

SKEW_WARNING_S = 1.0
"""A host clock further than this from the database's is logged (once, WARNING)."""

SYNC_EVERY_S = 5.0
"""How often a runtime samples the database's clock again (one tiny query)."""

STARTUP_SAMPLES = 3
"""Samples taken when a runtime starts; the estimate keeps the tightest."""

DRIFT = 1e-4
"""Assumed worst rate difference between this host's monotonic clock and the database's
clock (100 ppm; NTP-disciplined clocks stay within a few ppm). The estimate loses this
much per second since its sample, so it stays a lower bound between samples."""


class Clock:
    """A source of time in aware UTC. Subclass to control time (tests, simulations): a
    clock passed to `Runtime(clock=...)` decides time, even on PostgreSQL."""

    authoritative: ClassVar[bool] = True
    """True: the runtime uses this clock as it is. False (`SystemClock`): it is only this
    host's opinion, and beside a store with a clock of its own (PostgreSQL) the runtime
    follows the store's clock instead, measuring this one's skew against it."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def skew(self) -> float | None:
        """Seconds this host's wall clock is ahead of the store's (negative: behind), as
        last measured; None when not measured (no store clock, or a clock that decides
        time itself)."""
        return None


class SystemClock(Clock):
    """This host's wall clock, the default. Subclass it to simulate a skewed host."""

    authoritative: ClassVar[bool] = False


SYSTEM_CLOCK = SystemClock()


class DatabaseClock(Clock):
    """The database's clock as this process can know it: never ahead of it.

    Each sample reads the database's time `db` between two monotonic readings `sent`
    and `received` of this process; the database's time at monotonic instant `m` is
    then at least `db + (m - received)`. The estimate keeps the tightest such lower
    bound (less `DRIFT` per second since it was taken), so:

    - a timer is due, or a lease expired, only once the database's clock has reached
      the time written (the estimate is late by at most one round trip, never early);
      a deadline is itself written from an estimate (now + duration), so a sleep
      started on one worker and judged on another lasts its duration within the first
      worker's sampling error (measured: 0.1-3 ms on one loaded host) -- against the
      two hosts' whole clock difference before;
    - a step of the host's wall clock (NTP, someone setting the date)
      changes nothing: between samples time comes from the monotonic clock;
    - the database's clock stepping back is noticed at the next sample (the new
      sample's upper bound `db + (m - sent)` falls below the estimate) and followed.

    Before the first sample it returns the host clock's time (`base`).
    """

    authoritative: ClassVar[bool] = True

    def __init__(self, base: Clock) -> None:
        self.base = base
        self._offset: float | None = None  # database epoch seconds minus monotonic
        self._taken = 0.0  # monotonic time of the sample `_offset` comes from
        self._skew: float | None = None
        self._warned = False

    def now(self) -> datetime:
        offset = self._offset
        if offset is None:
            return self.base.now()
        m = time.monotonic()
        return datetime.fromtimestamp(m + offset - DRIFT * (m - self._taken), UTC)

    def skew(self) -> float | None:
        return self._skew

    def observe(self, sent: float, db: datetime, received: float) -> None:
        """Take one sample: `db`, the database's time read between the monotonic
        instants `sent` and `received` (and measure the host clock's skew)."""
        wall = self.base.now().timestamp()
        at = db.timestamp()
        low = at - received
        high = at - sent
        offset = self._offset
        if offset is not None:
            offset -= DRIFT * (received - self._taken)
        if offset is None or low > offset or high < offset:
            self._offset = low
            self._taken = received
        # The skew is a figure for people: measured against the midpoint of the trip.
        self._skew = wall - (at + (received - sent) / 2)
        if abs(self._skew) > SKEW_WARNING_S and not self._warned:
            self._warned = True
            log.warning(
                "this host's clock is %.3f s %s the database's: durable follows the "
                "database's clock for leases, claims, timers and recorded times; fix the "
                "host's time synchronisation (NTP)",
                abs(self._skew),
                "ahead of" if self._skew > 0 else "behind",
            )

    async def sync(self, read: Callable[[], Awaitable[datetime | None]]) -> bool:
        """Sample the database's clock through `read` (the store's `database_time`);
        False when the store has no clock of its own (nothing changes)."""
        sent = time.monotonic()
        db = await read()
        received = time.monotonic()
        if db is None:
            return False
        self.observe(sent, db, received)
        return True

    async def follow(
        self, read: Callable[[], Awaitable[datetime | None]], every: float = SYNC_EVERY_S
    ) -> None:
        """Sample again every `every` seconds until cancelled. A failed sample (the
        database is down) keeps the last estimate: the monotonic clock carries it."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.sync(read)
            except Exception as exc:  # an outage: the components that need it log it
                log.debug("could not sample the database's clock: %s", exc)


async def follow_database(
    clock: Clock, read: Callable[[], Awaitable[datetime | None]]
) -> asyncio.Task[None] | None:
    """Make a runtime's `DatabaseClock` follow the store's clock (`read`, the store's
    `database_time`): the first sample is taken before this returns, and the task
    returned keeps sampling (cancel it on shutdown). None, and nothing changes, for an
    authoritative clock or a store without a clock of its own."""
    if not isinstance(clock, DatabaseClock) or not await clock.sync(read):
        return None
    # A deadline set from the estimate (a sleep's end) inherits its error: take the
    # tightest of a few samples (each one round trip, at start only).
    for _ in range(STARTUP_SAMPLES - 1):
        await clock.sync(read)
    return asyncio.create_task(clock.follow(read), name="durable-clock")
