"""The claim loop: leases, concurrency, the sticky cache, heartbeats and sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import socket
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from durable.clock import Clock
from durable.core.history import History
from durable.core.state import DriveResult
from durable.store.base import ClaimedRun, Extend, Finish, Store
from durable.worker.committer import GroupCommitter
from durable.worker.execution import RunExecution
from durable.workflow import Registry, WorkflowDef

log = logging.getLogger("durable.worker")


class Executor:
    """Claims runnable runs of the registered workflows and drives them to their next stop."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        clock: Clock,
        concurrency: int,
        lease_s: float,
        poll_interval: float,
        sticky_size: int,
        max_payload: int | None,
        on_finished: Callable[[str, Finish | None], None],
        context_provider: Callable[[Any], Any] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_interval = poll_interval
        self.sticky_size = sticky_size
        self.max_payload = max_payload
        self.on_finished = on_finished
        # Observer of local progress (run id, "running" | "suspended" | "finished" |
        # "abandoned"): the runtime's subscribers (the HTTP server's live updates).
        self.on_changed: Callable[[str, str], None] | None = None
        self.context_provider = context_provider  # builds ctx.context per execution
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.committer = GroupCommitter(store, clock, lease_s=lease_s)
        self.active: dict[str, RunExecution] = {}
        self.sticky: OrderedDict[str, RunExecution] = OrderedDict()
        self._tasks: dict[asyncio.Task[None], str] = {}  # execution task -> run id
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._timers: list[datetime] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight = 0  # executions started and not yet ended (claimed slots)
        self._reserved = 0  # slots promised to runs this process is inserting itself
        self.claim_batch = max(1, min(concurrency, 500))

    # -- lifecycle --------------------------------------------------------------------

    def start_committer(self) -> None:
        self.committer.start()

    def start_worker(self) -> None:
        self._loop_task = asyncio.create_task(self._claim_loop(), name="durable-claim-loop")
        self._beat_task = asyncio.create_task(self._heartbeat_loop(), name="durable-heartbeat")

    async def stop(self, grace_s: float) -> None:
        """Stop claiming, let in-flight runs reach a stop for `grace_s`, release the rest."""
        self._stopping = True
        self._wake.set()
        await _cancel_and_wait(self._loop_task)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        leftover = list(self.active)
        for execution in list(self.active.values()):
            execution.evict()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        await _cancel_and_wait(self._beat_task)
        dropped = [e.task for e in self.sticky.values() if e.task is not None]
        for execution in self.sticky.values():
            execution.evict()
        self.sticky.clear()
        if dropped:
            # Let the cancelled coroutines unwind before the loop may close.
            await asyncio.wait(dropped, timeout=1.0)
        await self.committer.close()
        if leftover:
            with contextlib.suppress(Exception):
                await self.store.release(self.owner, leftover, self.clock.now())

    # -- wake-ups ---------------------------------------------------------------------

    def poke(self) -> None:
        """Something may be runnable now (NOTIFY, a woken suspend, a freed slot)."""
        self._wake.set()

    def note_wake_at(self, when: datetime) -> None:
        """Remember a timer of a run we suspended, to poll right when it is due."""
        heapq.heappush(self._timers, when)
        if len(self._timers) > 10_000:
            self._timers = heapq.nsmallest(5_000, self._timers)
        self._wake.set()

    def _next_timeout(self) -> float:
        now = self.clock.now()
        while self._timers and self._timers[0] <= now:
            heapq.heappop(self._timers)
        timeout = self.poll_interval
        if self._timers:
            timeout = min(timeout, (self._timers[0] - now).total_seconds())
        return max(timeout, 0.0)

    def cancel_local(self, run_id: str) -> None:
        """A NOTIFY said `run_id` was cancelled: stop its live coroutine here."""
        execution = self.active.get(run_id) or self.sticky.pop(run_id, None)
        if execution is not None:
            execution.cancel_by_user()

    # -- claiming ---------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                claimed = await self.claim_and_start(exclude=())
                backoff = 0.05
            except Exception as exc:
                log.warning("claim failed (%s); retrying in %.2fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if claimed:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_timeout()):
                    await self._wake.wait()
            self._wake.clear()
            if self._inflight + self._reserved >= self.concurrency:
                self._slot_free.clear()
                await self._slot_free.wait()

    async def claim_and_start(self, exclude: tuple[str, ...] | set[str]) -> list[str]:
        free = self.concurrency - self._inflight - self._reserved
        if free <= 0:
            return []
        self._wake.clear()
        claimed = await self.store.claim(
            owner=self.owner,
            keys=self.registry.keys(),
            limit=min(free, self.claim_batch),
            now=self.clock.now(),
            lease_s=self.lease_s,
            exclude=list(exclude),
        )
        for c in claimed:
            self._start(c)
        return [c.run_id for c in claimed]

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    def reserve(self, defn: WorkflowDef) -> bool:
        """Promise a slot to a run this process is about to insert already claimed.

        Local dispatch: a worker that triggers a run it can execute skips the NOTIFY and
        the claim query (about a millisecond of latency) by inserting it leased to itself.
        """
        if self._stopping or self.registry.find(defn.name, defn.version) is not defn:
            return False
        if self._inflight + self._reserved >= self.concurrency:
            return False
        self._reserved += 1
        return True

    def unreserve(self) -> None:
        self._reserved -= 1
        self._slot_free.set()

    def start_reserved(self, claimed: ClaimedRun) -> None:
        self._reserved -= 1
        self._start(claimed)

    def _start(self, claimed: ClaimedRun) -> None:
        defn = self.registry.find(claimed.workflow, claimed.version)
        assert defn is not None  # the claim only returns registered (name, version) pairs
        self._inflight += 1
        task = asyncio.create_task(
            self._execute(claimed, defn), name=f"durable-exec-{claimed.run_id}"
        )
        self._tasks[task] = claimed.run_id
        task.add_done_callback(self._forget_task)

    async def _execute(self, claimed: ClaimedRun, defn: WorkflowDef) -> None:
        run_id = claimed.run_id
        execution = self.sticky.pop(run_id, None)
        try:
            if (
                execution is not None
                and execution.fence + 1 == claimed.fence
                and not execution.dead
            ):
                execution.resume(claimed)
            else:
                if execution is not None:
                    execution.evict()
                history = History(() if claimed.fresh else await self.store.load_events(run_id))
                execution = RunExecution(self, claimed, defn, history)
            self.active[run_id] = execution
            if self.on_changed is not None:
                self.on_changed(run_id, "running")
            outcome = await execution.drive()
        except Exception as exc:
            # Typically the database went away while loading history; the run is released
            # (or its lease lapses) and continues from its history later.
            log.warning("run %s: could not execute (%s); releasing it", run_id, exc)
            outcome = DriveResult.ABANDONED
            if execution is not None:
                execution.evict()
            with contextlib.suppress(Exception):
                await self.store.release(self.owner, [run_id], self.clock.now())
        finally:
            # Identity check: a stale execution ending late must not untrack the newer
            # execution this worker started for the same run after re-claiming it.
            if execution is not None and self.active.get(run_id) is execution:
                del self.active[run_id]
            self._inflight -= 1
            self._slot_free.set()
            self._wake.set()
        if outcome is DriveResult.SUSPENDED and execution is not None:
            if self.sticky_size > 0:
                self.sticky[run_id] = execution
                while len(self.sticky) > self.sticky_size:
                    _, old = self.sticky.popitem(last=False)
                    old.evict()
            else:
                execution.evict()
        elif outcome is DriveResult.FINISHED and execution is not None:
            self.on_finished(run_id, execution.outcome)
        elif execution is not None and outcome is DriveResult.ABANDONED:
            execution.evict()
        if self.on_changed is not None:
            self.on_changed(run_id, outcome.value)

    async def run_pass(self) -> int:
        """One sweep: execute every runnable run, each at most once; return how many."""
        seen: set[str] = set()
        while True:
            started = await self.claim_and_start(exclude=seen)
            seen.update(started)
            mine = [t for t, run_id in self._tasks.items() if run_id in seen]
            if not started and not mine:
                return len(seen)
            if mine:
                await asyncio.wait(mine, return_when=asyncio.FIRST_COMPLETED)

    # -- leases -----------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = max(self.lease_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.maintain()  # history partitions ahead; at most hourly
            except Exception as exc:
                log.warning("store maintenance failed: %s", exc)
            held = list(self.active.values())
            if not held:
                continue
            extends = [Extend(e.run_id, e.fence) for e in held]
            try:
                lost = await self.committer.heartbeat(extends)
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            for execution in held:
                if execution.run_id in lost and self.active.get(execution.run_id) is execution:
                    log.warning("run %s: lease lost; stopping it here", execution.run_id)
                    execution.evict()

    def resolve(self, workflow: WorkflowDef | str) -> WorkflowDef:
        if isinstance(workflow, WorkflowDef):
            return workflow
        return self.registry.get(workflow)


async def _cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel a background loop and wait until it has unwound."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
