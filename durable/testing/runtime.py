"""`TestRuntime`: a `Runtime` on a virtual clock, with time skipping, for workflow tests.

Time stands still unless the test moves it (`advance`) or a caller waits on
`handle.result()` while nothing can progress except by time passing; then the clock
jumps straight to the next timer. So a workflow that sleeps 30 days finishes in
milliseconds, and a test sees exactly what a real deployment would at each instant.

Execution is driven here rather than by the executor's claim loop: the claim loop
sleeps in real time, while this runtime must *know* when the engine is idle before it
moves time. One driver task repeats "fire due schedules, run every runnable run to its
next stop" (`Executor.run_pass`, which returns only once every run it started has
suspended or finished). A pass that advanced nothing, at a virtual instant where the
store reports nothing runnable, is idle by construction: only a timer (a run's
`ready_at`: sleeps, timeouts, retry backoffs, deadlines; a lease's expiry; a
schedule's next fire) can change anything, and the earliest one is where time goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import msgspec

from durable.clock import Clock
from durable.config import RuntimeConfig
from durable.durations import parse_duration
from durable.runtime import RunHandle, Runtime
from durable.schedules import Scheduler, declared_schedules
from durable.store import MEMORY_URL, Store
from durable.workflow import WorkflowDef

log = logging.getLogger("durable.testing")

# How often the driver looks for work it was not told about (another process's
# signal, a NOTIFY): real seconds. Work started through this runtime pokes it at once.
_POLL_S = 0.05


class VirtualClock(Clock):
    """A clock that only moves when told to, and never backwards."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def move_to(self, when: datetime) -> None:
        if when > self._now:
            self._now = when


class TestRuntime(Runtime):
    """A `Runtime` on a virtual clock; see the module docstring.

    `TestRuntime(workflows=[...], dsn=None, start=None, **runtime_options)`; `dsn`
    defaults to `"memory://"` (unless `store=` is given); `start` (an aware datetime) is
    where the clock begins, the real now by default. Other keyword arguments go to
    `Runtime` (`schema=`, `store=`, `concurrency=`, ...), except `worker` and `clock`,
    which this runtime owns. `TestRuntime.from_config(config, ...)` works too: it
    runs with `worker=False` whatever `config` says, and takes a `VirtualClock` (or
    none: one starting at the real now).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        workflows: Sequence[WorkflowDef] = (),
        dsn: str | None = None,
        start: datetime | None = None,
        **options: Any,
    ) -> None:
        for owned in ("worker", "clock"):
            if owned in options:
                raise TypeError(f"TestRuntime sets {owned!r} itself")
        if start is None:
            start = datetime.now(UTC)
        elif not isinstance(start, datetime) or start.tzinfo is None:
            raise ValueError(f"invalid start {start!r}: TestRuntime needs an aware datetime")
        clock = VirtualClock(start.astimezone(UTC))
        super().__init__(dsn, workflows=workflows, worker=False, clock=clock, **options)

    def _setup(
        self,
        dsn: str | None,
        config: RuntimeConfig,
        workflows: Sequence[WorkflowDef],
        clock: Clock | None,
        store: Store | None,
        context_provider: Callable[[Any], Any] | None = None,
    ) -> None:
        # Both `__init__` and `Runtime.from_config` (which skips `__init__`) end here.
        if clock is None:
            clock = VirtualClock(datetime.now(UTC))
        if not isinstance(clock, VirtualClock):
            raise TypeError(f"TestRuntime runs on a VirtualClock, not {clock!r}")
        if dsn is None and store is None:
            dsn = MEMORY_URL
        # worker=False: no claim loop and no scheduler loop (both sleep in real time);
        # the driver below executes runs and fires schedules instead.
        super()._setup(
            dsn,
            msgspec.structs.replace(config, worker=False),
            workflows,
            clock,
            store,
            context_provider,
        )
        self.virtual_clock = clock
        self._lock = asyncio.Lock()
        self._poked = asyncio.Event()
        self._skip_waiters = 0
        self._driver: asyncio.Task[None] | None = None
        self._ticker: Scheduler | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self._ticker = Scheduler(self)
        self._driver = asyncio.create_task(self._drive(), name="durable-test-driver")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
        await super().__aexit__(exc_type, exc, tb)

    # -- time -------------------------------------------------------------------------

    def now(self) -> datetime:
        """The virtual time."""
        return self.virtual_clock.now()

    async def advance(self, duration: Any) -> int:
        """Move the clock by `duration`, running everything that becomes due on the way.

        Timers fire in order, each at its own due time (a workflow's `ctx.now()` after
        waking reads that time), and nothing fires before it is due. Returns how many
        run executions the advance performed.
        """
        target = self.now() + timedelta(seconds=parse_duration(duration))
        advanced = 0
        async with self._lock:
            while True:
                advanced += await self._settle()
                nxt = await self._next_due()
                if nxt is None or nxt > target or nxt <= self.now():
                    break
                self.virtual_clock.move_to(nxt)
            self.virtual_clock.move_to(target)
            advanced += await self._settle()
        return advanced

    async def sweep(self) -> int:
        """One pass at the current virtual time (schedules, then every runnable run)."""
        async with self._lock:
            return await self._pass()

    # -- the driver -------------------------------------------------------------------

    async def _pass(self) -> int:
        assert self._ticker is not None, "TestRuntime is not started"
        started = await self._ticker.tick()
        return started + await self.executor.run_pass()

    async def _settle(self) -> int:
        """Pass until a pass advances nothing: the engine is idle at this instant."""
        total = 0
        while True:
            n = await self._pass()
            if n == 0:
                return total
            total += n

    async def _next_due(self) -> datetime | None:
        """The earliest instant at which something can become runnable, if any."""
        times: list[datetime] = []
        ready = await self.store.next_ready_at(self.registry.keys())
        if ready is not None:
            times.append(ready)
        # Only the schedules this runtime fires: another app's in the same schema never
        # fire here, so time must not jump to them.
        names = sorted(declared_schedules(self))
        fire = await self.store.next_schedule_due(names) if names else None
        if fire is not None:
            times.append(fire)
        return min(times, default=None)

    async def _skip(self) -> bool:
        """Idle now with a result() waiter: jump to the next timer. True if it jumped."""
        nxt = await self._next_due()
        # A due time not after now, after a pass that claimed nothing, is a run this
        # runtime cannot take yet (locked by another transaction): wait, do not jump.
        if nxt is None or nxt <= self.now():
            return False
        log.debug("time skipping: %s -> %s", self.now().isoformat(), nxt.isoformat())
        self.virtual_clock.move_to(nxt)
        return True

    async def _drive(self) -> None:
        backoff = _POLL_S
        while True:
            self._poked.clear()
            try:
                async with self._lock:
                    progressed = await self._pass() > 0
                    if not progressed and self._skip_waiters > 0:
                        progressed = await self._skip()
                backoff = _POLL_S
            except Exception as exc:
                log.warning("test runtime pass failed (%s); retrying", exc)
                progressed = False
                backoff = min(backoff * 2, 1.0)
            if progressed:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._poked.wait()

    def _poke(self) -> None:
        self._poked.set()

    # -- calls that create work: wake the driver at once ------------------------------

    async def trigger(self, *args: Any, **kwargs: Any) -> RunHandle:
        handle = await super().trigger(*args, **kwargs)
        self._poke()
        return handle

    async def signal(self, *args: Any, **kwargs: Any) -> None:
        await super().signal(*args, **kwargs)
        self._poke()

    async def execute_hook(self, *args: Any, **kwargs: Any) -> str:
        run_id = await super().execute_hook(*args, **kwargs)
        self._poke()
        return run_id

    async def _wait_finished(
        self, run_id: str, handle: RunHandle | None = None
    ) -> tuple[str, bytes | None, str | None]:
        # A result() waiter is what allows time skipping (see the module docstring).
        self._skip_waiters += 1
        self._poke()
        try:
            return await super()._wait_finished(run_id, handle)
        finally:
            self._skip_waiters -= 1
