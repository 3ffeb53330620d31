"""The event-loop watchdog: a thread that notices code holding the loop past the lease.

Leases are renewed by a task on the event loop, so an `async def` step that blocks the
loop (CPU work, `time.sleep`, a blocking driver) also stops every renewal of this
worker. Past the lease, another worker takes the run over and runs the step again,
and then blocks in turn. The watchdog sees it from outside the loop: the loop bumps a
timestamp every `period` seconds; when the thread finds it older than `threshold`
(a quarter of the lease), it logs one WARNING per episode naming the step, its run
and the line it is at, read from the loop thread's stack.

While the episode lasts, the watchdog stands in for the heartbeat: every `lease / 3`
it renews the leases of the runs this worker holds (`held`), from its own thread, on a
store object of its own (`side_store`, opened by this thread on its own event loop at
the first episode). Renewals go through the same fenced `Store.commit` as the
heartbeat's: a run taken over or cancelled meanwhile is simply not renewed. So a long
blocking step runs once, and the runs waiting behind it are delayed, not run again
elsewhere. The price: a loop blocked for ever holds its runs until the process is
stopped (as a `def` step hung for ever in its thread holds its run); the WARNING names
what blocks it. There is no side store for the memory store (its workers all share
this process, and this blocked loop) nor for a store passed as `Runtime(store=...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import NamedTuple

from durable.clock import Clock
from durable.context import Context
from durable.store.base import Batch, Extend, Store
from durable.worker.execution import RunExecution

log = logging.getLogger("durable.worker")

# The frames that say what the loop thread is running: a ctx.step coroutine (its locals
# name the step and its Context) and a run's main coroutine (RunExecution._main).
_STEP_CODE = Context._step.__code__
_MAIN_CODE = RunExecution._main.__code__


class Blocker(NamedTuple):
    """What holds the loop: the run's execution and step when known, and the line."""

    execution: RunExecution | None
    step: str | None
    where: str

    def describe(self) -> str:
        x = self.execution
        if x is None:
            return f"code outside any run's step at {self.where}"
        what = "workflow code" if self.step is None else f"step {self.step!r}"
        return f"{what} of run {x.run_id} (workflow {x.defn.name!r}) at {self.where}"


def find_blocker(frame: FrameType | None) -> Blocker:
    """Walk the loop thread's stack from its innermost frame outwards.

    Reads only frame locals of durable's own frames (`Context._step`: `name`, `self`;
    `RunExecution._main`: `self`); nothing is written.
    """
    where = "an unknown line"
    if frame is not None:
        code = frame.f_code
        where = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
    step: str | None = None
    execution: RunExecution | None = None
    f = frame
    while f is not None and execution is None:
        code = f.f_code
        found: object = None
        if code is _STEP_CODE:
            local = f.f_locals
            name = local.get("name")
            step = name if isinstance(name, str) else None
            found = getattr(local.get("self"), "_x", None)
        elif code is _MAIN_CODE:
            found = f.f_locals.get("self")
        if isinstance(found, RunExecution):
            execution = found
        f = f.f_back
    return Blocker(execution, step, where)


class LoopWatchdog:
    """Watches one event loop from a daemon thread (see the module docstring)."""

    def __init__(
        self,
        *,
        lease_s: float,
        clock: Clock,
        side_store: Callable[[], Store] | None,
        held: Callable[[], list[Extend]],
    ) -> None:
        self.lease_s = lease_s
        # A quarter of the lease, so the first renewal from this thread comes well before
        # the lease lapses; at least 0.5 s, so that scheduling noise on a busy machine is
        # not reported with the very short leases of tests.
        self.threshold = max(lease_s / 4, 0.5)
        self.period = self.threshold / 4
        self.renew_every = max(lease_s / 3, 0.05)
        self.clock = clock
        self._side_factory = side_store
        self._held = held
        self._side: Store | None = None
        self._side_loop: asyncio.AbstractEventLoop | None = None
        self._beat = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.episodes = 0  # blocked episodes seen (what tests and stats read)
        self.renewals = 0  # leases renewed from the watchdog thread

    # -- on the loop ------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._tick()
        self._thread = threading.Thread(target=self._watch, name="durable-watchdog", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        self._beat = time.monotonic()
        assert self._loop is not None
        self._handle = self._loop.call_later(self.period, self._tick)

    async def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, self.renew_every + 5.0)

    # -- on the watchdog thread -------------------------------------------------------

    def _watch(self) -> None:
        blocked_since: float | None = None
        renewed_at = 0.0
        blocker: Blocker | None = None
        checked = time.monotonic()
        try:
            while not self._stop.wait(self.period):
                now = time.monotonic()
                starved, checked = now - checked > 2 * self.period, now
                if starved and blocked_since is None:
                    # This thread itself ran late: the whole process was starved of CPU,
                    # not the loop blocked by code. Judge again at the next check.
                    continue
                blocked = now - self._beat
                if blocked < self.threshold:
                    if blocked_since is not None:
                        log.info(
                            "event loop unblocked after %.1fs (%s)",
                            now - blocked_since,
                            "unknown" if blocker is None else blocker.describe(),
                        )
                        self._close_side()  # no connection kept between episodes
                    blocked_since, blocker = None, None
                    continue
                if blocked_since is None:
                    blocked_since = self._beat
                    blocker = self._find()
                    self.episodes += 1
                    renewed_at = 0.0
                    self._warn(blocker, blocked)
                if self._side_factory is not None and now - renewed_at >= self.renew_every:
                    renewed_at = now
                    self._renew(self._held())
        finally:
            self._close_side()

    def _find(self) -> Blocker:
        try:
            frame = sys._current_frames().get(self._loop_thread)
            return find_blocker(frame)
        except Exception as exc:  # introspection is best effort; never kill the thread
            return Blocker(None, None, f"an unknown line ({type(exc).__name__})")

    def _warn(self, blocker: Blocker, blocked: float) -> None:
        renews = self._side_factory is not None
        log.warning(
            "event loop blocked for %.1fs (lease %gs) by %s. An async def step must not "
            "block: make it a plain def (it runs in a worker thread and keeps its lease). "
            "%s",
            blocked,
            self.lease_s,
            blocker.describe(),
            "Meanwhile this worker's watchdog thread renews the leases it holds."
            if renews
            else "Nothing renews this worker's leases meanwhile: past the lease, another "
            "worker may take its runs over and run their steps again.",
        )

    def _renew(self, extends: list[Extend]) -> None:
        """Extend these leases through the side store, as the heartbeat would."""
        if self._side_factory is None or not extends:
            return
        try:
            if self._side is None:
                self._side_loop = asyncio.new_event_loop()
                side = self._side_factory()
                self._side_loop.run_until_complete(
                    asyncio.wait_for(side.open(), timeout=self.renew_every)
                )
                self._side = side
            assert self._side_loop is not None
            batch = Batch(now=self.clock.now(), extends=extends, lease_s=self.lease_s)
            result = self._side_loop.run_until_complete(
                asyncio.wait_for(self._side.commit(batch), timeout=self.renew_every)
            )
        except Exception as exc:
            log.warning("lease renewal from the watchdog thread failed: %s", exc)
            self._close_side()  # a new connection at the next renewal
            return
        # Refused ones were taken over or ended: the heartbeat stops them once the loop runs.
        self.renewals += len(extends) - len(result.rejected)

    def _close_side(self) -> None:
        side, self._side = self._side, None
        loop, self._side_loop = self._side_loop, None
        if loop is None:
            return
        if side is not None:
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(side.close(), timeout=5.0))
        loop.close()
