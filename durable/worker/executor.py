"""The claim loop: leases, concurrency, the sticky cache, heartbeats and sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from durable.clock import Clock
from durable.core.history import History
from durable.core.state import DriveResult
from durable.errors import WorkflowNotFound
from durable.outage import Outage
from durable.store.base import ClaimedRun, Extend, Finish, Store, WorkerInfo
from durable.worker.committer import GroupCommitter
from durable.worker.execution import RunExecution
from durable.worker.sticky import StickyCache
from durable.worker.watchdog import LoopWatchdog
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
        listen_delay: float | None = None,
        sticky_bytes: int = 1 << 62,
        side_store: Callable[[], Store] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_interval = poll_interval
        self.max_payload = max_payload
        self.on_finished = on_finished
        # Observer of local progress (run id, "running" | "suspended" | "finished" |
        # "abandoned"): the runtime's subscribers (the HTTP server's live updates).
        self.on_changed: Callable[[str, str], None] | None = None
        self.context_provider = context_provider  # builds ctx.context per execution
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.committer = GroupCommitter(store, clock, lease_s=lease_s)
        self.active: dict[str, RunExecution] = {}
        self.sticky = StickyCache(sticky_size, sticky_bytes)
        self._tasks: dict[asyncio.Task[None], str] = {}  # execution task -> run id
        self._live: dict[str, asyncio.Task[None]] = {}  # run id -> its execution task
        # The leases of the runs this process executes: run id -> (when the lease was
        # last granted, by this clock and by time.monotonic(), taken before the claim or
        # renewal was sent; the fence). Says which live runs' leases may have lapsed (see
        # `_executing_at_risk`) and what the watchdog renews. Cleanups have no time:
        # their lease lasts their grace and is never renewed.
        self._granted: dict[str, tuple[datetime | None, float, int]] = {}
        # No stamp in `_granted` is older than this (recomputed at each heartbeat), and
        # how many of its entries are cleanups: the usual claim needs no scan at all.
        self._grant_floor: tuple[datetime, float] | None = None
        self._cleanups_live = 0
        self.watchdog = LoopWatchdog(
            lease_s=lease_s, clock=clock, side_store=side_store, held=self._held_leases
        )
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._timers: list[datetime] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight = 0  # executions started and not yet ended (claimed slots)
        self._reserved = 0  # slots promised to runs this process is inserting itself
        self.claim_batch = max(1, min(concurrency, 500))
        # Sonamu's listenDelay: after a notification, wait this long before claiming so
        # the rest of a burst is claimed in the same batch. Local wake-ups cut it short.
        self.listen_delay = listen_delay or 0.0
        self._noticed = False
        self._urgent = asyncio.Event()
        self._started_at = clock.now()
        # Cleanups of cancelled runs are claimed by a separate query, run when a cancel
        # notice arrived and otherwise every few poll intervals (cheap: a partial index).
        self._cleanup_due = True
        self._cleanup_checked: datetime | None = None
        # The unqueued claim is skipped while nothing can have made an unqueued run
        # claimable since one came back short (see _unqueued_idle): a queued workload
        # then pays one round trip per claim, not two, and a run ending here (its slot
        # freed) costs an unqueued workload no claim at all (issue 15: a query less per
        # run, which ran before the run's result() waiter woke). Every cause other than
        # a freed slot bumps the generation; `_plain_dry` is (generation, loop time)
        # of the last short unqueued claim, or None.
        self._plain_gen = 0
        self._plain_dry: tuple[int, float] | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start_committer(self) -> None:
        self.committer.start()
        self.watchdog.start()

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
        await self.watchdog.stop()
        dropped = self.sticky.clear()
        if dropped:
            # Let the cancelled coroutines unwind before the loop may close.
            await asyncio.wait(dropped, timeout=1.0)
        await self.committer.close()
        if self._beat_task is not None:
            with contextlib.suppress(Exception):
                await self.store.remove_worker(self.owner)
        if leftover:
            with contextlib.suppress(Exception):
                await self.store.release(self.owner, leftover, self.clock.now())

    # -- wake-ups ---------------------------------------------------------------------

    def poke(self, *, notice: bool = False) -> None:
        """Something may be runnable now: a NOTIFY (`notice`, subject to `listen_delay`),
        or a local cause (a woken suspend, a reconnect) that is never delayed."""
        if notice:
            self._noticed = True
        else:
            self._urgent.set()
        self._plain_gen += 1
        self._wake.set()

    def poke_queues(self) -> None:
        """A run ended somewhere (a DONE notice): a queue slot may have freed. Claims
        again at once, but only a queue's claim can profit (the unqueued claim does not
        wait on finishes), so the unqueued claim may still be skipped."""
        self._urgent.set()
        self._wake.set()

    def note_wake_at(self, when: datetime) -> None:
        """Remember a timer of a run we suspended, to poll right when it is due."""
        heapq.heappush(self._timers, when)
        if len(self._timers) > 10_000:
            self._timers = heapq.nsmallest(5_000, self._timers)
        self._plain_gen += 1
        self._wake.set()

    def _next_timeout(self) -> float:
        now = self.clock.now()
        while self._timers and self._timers[0] <= now:
            heapq.heappop(self._timers)
            self._plain_gen += 1  # a timer fell due: the next claim must not skip it
        timeout = self.poll_interval
        if self._timers:
            timeout = min(timeout, (self._timers[0] - now).total_seconds())
        return max(timeout, 0.0)

    @property
    def claiming(self) -> bool:
        """True while the claim loop runs (a worker runtime that is not stopping)."""
        return self._loop_task is not None and not self._stopping

    def cancel_local(self, run_id: str) -> None:
        """A notice said `run_id` was cancelled: drop its live coroutine here.

        Its cleanup is not run in this coroutine: some worker claims the cancelled run
        (`Store.claim_cleanups`), replays it and raises WorkflowCancelled where it
        stopped, so the cleanup runs exactly once wherever the run was.
        """
        execution = self.active.get(run_id)
        if execution is not None and not execution.cleanup:
            execution.evict()
        self.sticky.drop(run_id)
        self._cleanup_due = True
        self._plain_gen += 1
        self._wake.set()

    def forget(self, run_id: str) -> None:
        """A notice said `run_id` ended (here or on another worker): nothing will resume
        its suspended coroutine, so drop it from the sticky cache now."""
        self.sticky.drop(run_id)

    # -- claiming ---------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        outage = Outage("claim loop", log)
        while not self._stopping:
            try:
                full = await self._claim_round(exclude=())
                outage.recovered()
            except Exception as exc:
                self._plain_gen += 1
                await asyncio.sleep(outage.failed(exc))
                continue
            if full:
                continue  # the batch limit cut it short: there may be more right away
            # Every source came back short: claiming again before something changes (a
            # slot frees, a notice, a timer, the poll) would only find nothing. A wake-up
            # during the claim left `_wake` set, so nothing is missed.
            woken = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_timeout()):
                    await self._wake.wait()
                    woken = True
            if not woken:
                self._plain_gen += 1  # the poll (or a timer): look at everything
            self._wake.clear()
            if self._noticed and self.listen_delay > 0 and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.listen_delay):
                        await self._urgent.wait()
            self._urgent.clear()
            if self._inflight + self._reserved >= self.concurrency:
                self._slot_free.clear()
                await self._slot_free.wait()

    def _executing_at_risk(self) -> list[str]:
        """Runs this process is executing whose lease may have lapsed: granted over half
        a lease ago (by either clock), or cleanups. Every claim excludes them.

        A worker must never claim a run it is still executing: the claim would bump the
        fence, fence out the execution under way and start the run again here (a step
        that held the event loop past the lease ran 2-4 times on one worker). A run
        granted less than half a lease ago cannot be claimable, so the list stays short
        (usually empty) instead of naming every live run in every claim.
        """
        if not self._granted:
            return []
        now, mono = self.clock.now(), time.monotonic()
        half = self.lease_s / 2
        floor = self._grant_floor
        if not self._cleanups_live and (
            floor is None or (mono - floor[1] < half and (now - floor[0]).total_seconds() < half)
        ):
            return []
        return [
            run_id
            for run_id, (at, at_mono, _) in self._granted.items()
            if at is None or mono - at_mono >= half or (now - at).total_seconds() >= half
        ]

    def _held_leases(self) -> list[Extend]:
        """The leases this process holds and renews (not cleanups'), for the watchdog
        thread: one atomic copy of the dict, then no shared state is touched."""
        return [
            Extend(run_id, fence)
            for run_id, (at, _, fence) in list(self._granted.items())
            if at is not None
        ]

    async def claim_and_start(self, exclude: tuple[str, ...] | set[str]) -> list[str]:
        """Claim what this worker has room for, start it, return the run ids."""
        self._plain_gen += 1  # a sweep (or a direct call) looks at everything
        started: list[str] = []
        await self._claim_round(exclude, started)
        return started

    def _unqueued_idle(self) -> bool:
        """Whether the unqueued claim would find nothing new: the last one came back
        short and since then only slots freed (or runs ended elsewhere).

        A freed slot lets a queued run start, never an unqueued one that the short
        claim left behind (it took all it saw). Every other cause bumps `_plain_gen`:
        a notice (new, woken or released-by-cancel runs), a local poke, a timer falling
        due, the poll, an error. Runs only the poll finds (a lapsed lease, a release
        without a notice) are found at most one poll interval late, as by an idle
        worker: past that the claim runs whatever the wake-ups."""
        dry = self._plain_dry
        if dry is None or dry[0] != self._plain_gen:
            return False
        if asyncio.get_running_loop().time() - dry[1] >= self.poll_interval:
            return False
        return not (self._timers and self._timers[0] <= self.clock.now())

    async def _claim_round(
        self, exclude: tuple[str, ...] | set[str], started: list[str] | None = None
    ) -> bool:
        """One claim of every source; True when the batch limit (not the supply of
        claimable runs) cut it short, so claiming again at once may find more."""
        free = self.concurrency - self._inflight - self._reserved
        if free <= 0:
            return False
        self._wake.clear()
        self._noticed = False  # this claim serves every notice received so far
        _, queued = self.registry.claim_plan()
        limit = min(free, self.claim_batch)
        now = self.clock.now()
        granted = (now, time.monotonic())
        skip = [*exclude, *self._executing_at_risk()]
        claimed: list[ClaimedRun] = []
        if not self._unqueued_idle():
            gen = self._plain_gen
            at = asyncio.get_running_loop().time()
            # Every registered pair, queued or not: `claim` takes only runs stored
            # without a queue, which includes runs created before their workflow gained
            # one.
            claimed = await self.store.claim(
                owner=self.owner,
                keys=self.registry.keys(),
                limit=limit,
                now=now,
                lease_s=self.lease_s,
                exclude=skip,
            )
            self._plain_dry = (gen, at) if len(claimed) < limit else None
        # Each queue's runs start through its own claim (its limits, its row lock), so
        # queued and unqueued workflows never wait on each other's claims.
        for queue, keys in queued:
            if len(claimed) >= limit:
                break
            claimed += await self.store.claim_queue(
                owner=self.owner,
                queue=queue.spec(),
                keys=keys,
                limit=limit - len(claimed),
                now=self.clock.now(),
                lease_s=self.lease_s,
                exclude=skip,
            )
        if len(claimed) < limit and self._cleanups_due(now):
            claimed += await self.store.claim_cleanups(
                owner=self.owner,
                keys=self.registry.keys(),
                limit=limit - len(claimed),
                now=now,
                exclude=skip,
            )
        full = len(claimed) >= limit
        if claimed and time.monotonic() - granted[1] >= self.lease_s / 2:
            claimed, granted = await self._reconfirm(claimed)
        for c in claimed:
            self._start(c, granted)
        if started is not None:
            started.extend(c.run_id for c in claimed)
        return full

    async def _reconfirm(
        self, claimed: list[ClaimedRun]
    ) -> tuple[list[ClaimedRun], tuple[datetime, float]]:
        """Renew, fenced, the leases of a claim answered late, before starting its runs.

        A claim's leases are granted when the database runs it, but this process learns
        of them only when the loop reads the answer. If the loop was held meanwhile (a
        blocking step), nothing renewed those leases (the watchdog renews only runs it
        knows of): past the lease another worker may have taken a run over and be
        running its step. Starting it here too would run the step twice. So a claim
        older than half a lease is confirmed first; runs taken over are dropped.
        """
        granted = (self.clock.now(), time.monotonic())
        plain = [Extend(c.run_id, c.fence) for c in claimed if not c.cleanup]
        lost = await self.committer.heartbeat(plain) if plain else set()
        for run_id in sorted(lost):
            log.warning(
                "run %s: claimed, but the claim was read after its lease lapsed and the run"
                " was taken over meanwhile (was the event loop blocked?); not started here",
                run_id,
            )
        return [c for c in claimed if c.run_id not in lost], granted

    def _cleanups_due(self, now: datetime) -> bool:
        last = self._cleanup_checked
        if (
            self._cleanup_due
            or last is None
            or (now - last).total_seconds() >= 5 * (self.poll_interval)
        ):
            self._cleanup_due = False
            self._cleanup_checked = now
            return True
        return False

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        run_id = self._tasks.pop(task, None)
        if run_id is not None and self._live.get(run_id) is task:
            del self._live[run_id]  # a task cancelled before it ever ran
            self._ungrant(run_id)

    def reserve(self, defn: WorkflowDef, execute: bool = False) -> bool:
        """Promise a slot to a run this process is about to insert already claimed.

        Local dispatch: a worker that triggers a run it can execute skips the NOTIFY and
        the claim query (about a millisecond of latency) by inserting it leased to itself.
        `execute` (trigger(execute=True)) must get the slot, even past `concurrency`
        (its caller awaits it, which bounds it), or raises before anything is written.
        """
        if self._stopping or self.registry.find(defn.name, defn.version) is not defn:
            if execute:
                raise WorkflowNotFound(
                    f"trigger(execute=True): workflow {defn.name!r} version {defn.version!r}"
                    " is not registered in this runtime (or it is stopping)"
                )
            return False
        if self._inflight + self._reserved >= self.concurrency and not execute:
            return False
        self._reserved += 1
        return True

    def unreserve(self) -> None:
        self._reserved -= 1
        self._slot_free.set()

    def start_reserved(self, claimed: ClaimedRun) -> None:
        self._reserved -= 1
        # Inserted leased to us a moment ago: the lease began before this stamp, by the
        # insert's round trip, far less than the half lease `_executing_at_risk` allows.
        self._start(claimed, (self.clock.now(), time.monotonic()))

    async def settle(self, run_id: str) -> None:
        """Wait until this process's execution of `run_id` reaches its first stop
        (suspension, end, or abandon), for trigger(execute=True)."""
        if self._beat_task is None:  # worker=False: still keep the lease while it runs
            self._beat_task = asyncio.create_task(self._heartbeat_loop(), name="durable-heartbeat")
        mine = [task for task, rid in self._tasks.items() if rid == run_id]
        if mine:
            await asyncio.wait(mine)

    def _start(self, claimed: ClaimedRun, granted: tuple[datetime, float]) -> None:
        if claimed.taken_from is not None and claimed.taken_from != self.owner:
            log.warning(
                "run %s: taking it over from %s, whose lease expired (crashed or stalled "
                "worker); it continues from its history",
                claimed.run_id,
                claimed.taken_from,
            )
        defn = self.registry.find(claimed.workflow, claimed.version)
        assert defn is not None  # the claim only returns registered (name, version) pairs
        self._inflight += 1
        task = asyncio.create_task(
            self._execute(claimed, defn), name=f"durable-exec-{claimed.run_id}"
        )
        self._tasks[task] = claimed.run_id
        self._live[claimed.run_id] = task
        if claimed.cleanup:
            self._cleanups_live += 1
            self._granted[claimed.run_id] = (None, 0.0, claimed.fence)
        else:
            if self._grant_floor is None:
                self._grant_floor = granted  # stamps only get newer than an existing floor
            self._granted[claimed.run_id] = (*granted, claimed.fence)
        task.add_done_callback(self._forget_task)

    def _ungrant(self, run_id: str) -> None:
        entry = self._granted.pop(run_id, None)
        if entry is not None and entry[0] is None:
            self._cleanups_live -= 1

    def is_live(self, run_id: str) -> bool:
        """Whether an execution of `run_id` is under way in this process.

        Until it ends, its finish (or its stop without one) reaches `on_finished`, so a
        `result()` waiter needs no query meanwhile.
        """
        return run_id in self._live

    async def _execute(self, claimed: ClaimedRun, defn: WorkflowDef) -> None:
        run_id = claimed.run_id
        execution = self.sticky.take(run_id)
        try:
            if (
                execution is not None
                and execution.fence + 1 == claimed.fence
                and not execution.dead
                and not claimed.cleanup
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
            self._plain_gen += 1  # released without a notice: claimable again
        finally:
            # Identity check: a stale execution ending late must not untrack the newer
            # execution this worker started for the same run after re-claiming it.
            if execution is not None and self.active.get(run_id) is execution:
                del self.active[run_id]
            if self._live.get(run_id) is asyncio.current_task():
                del self._live[run_id]
                self._ungrant(run_id)
            self._inflight -= 1
            self._slot_free.set()
            self._wake.set()
        if outcome is DriveResult.SUSPENDED and execution is not None:
            self.sticky.put(run_id, execution)
        elif outcome is DriveResult.FINISHED and execution is not None:
            self.on_finished(run_id, execution.outcome)
            execution.dispose()
            if execution.parent_run_id is not None:
                self.poke()  # its parent may wait on it here: not subject to listen_delay
        elif execution is not None and outcome is DriveResult.ABANDONED:
            execution.evict()
        if outcome is not DriveResult.FINISHED:
            # Not finished here: result() waiters stop relying on this process.
            self.on_finished(run_id, None)
        if self.on_changed is not None:
            self.on_changed(run_id, outcome.value)

    async def run_pass(self) -> int:
        """One sweep: execute every runnable run, each at most once; return how many."""
        seen: set[str] = set()
        self._cleanup_due = True
        while True:
            started = await self.claim_and_start(exclude=seen)
            seen.update(started)
            mine = [t for t, run_id in self._tasks.items() if run_id in seen]
            if not started and not mine:
                return len(seen)
            if mine:
                await asyncio.wait(mine, return_when=asyncio.FIRST_COMPLETED)

    # -- leases -----------------------------------------------------------------------

    async def _record_worker(self) -> None:
        """Refresh this worker's row: live for one lease, serving the registry's keys."""
        now = self.clock.now()
        host, pid, _ = self.owner.rsplit(":", 2)
        await self.store.record_worker(
            WorkerInfo(
                id=self.owner,
                host=host,
                pid=int(pid),
                started_at=self._started_at,
                last_seen=now,
                expires_at=now + timedelta(seconds=self.lease_s),
                workflows=self.registry.keys(),
                clock_skew_s=self.clock.skew(),
            ),
            now,
        )

    async def _heartbeat_loop(self) -> None:
        interval = max(self.lease_s / 3, 0.05)
        outage = Outage("heartbeat", log)
        first = True
        while True:
            if not first:
                await asyncio.sleep(interval)
            first = False
            try:
                await self.store.maintain()  # history partitions ahead; at most hourly
            except Exception as exc:
                log.warning("store maintenance failed: %s", exc)
            # Cleanup leases last their whole grace (and the group commit renews only
            # running runs), so they are not renewed here.
            held = [e for e in self.active.values() if not e.cleanup]
            extends = [Extend(e.run_id, e.fence) for e in held]
            lost: set[str] = set()
            granted = (self.clock.now(), time.monotonic())
            try:
                # Leases first: the worker row is informational, the leases are not.
                if extends:
                    lost = await self.committer.heartbeat(extends)
                    for e in held:
                        grant = self._granted.get(e.run_id)
                        if e.run_id not in lost and grant is not None and grant[2] == e.fence:
                            self._granted[e.run_id] = (*granted, e.fence)
                    self._grant_floor = _floor(self._granted.values())
                await self._record_worker()
                outage.recovered()
            except Exception as exc:
                outage.failed(exc)
            for execution in held:
                if execution.run_id in lost and self.active.get(execution.run_id) is execution:
                    # Taken over, or ended elsewhere: a cancel whose notice never arrived
                    # is found here, within one heartbeat (lease / 3), and its cleanup is
                    # looked for at the next claim.
                    log.warning(
                        "run %s: lease lost (taken over, cancelled or ended elsewhere); "
                        "stopping it here",
                        execution.run_id,
                    )
                    execution.evict()
                    self._cleanup_due = True
                    self._wake.set()

    async def settled(self, run_id: str, timeout: float = 5.0) -> None:
        """Wait until this worker's executions of `run_id` have wound down.

        A run's end reaches waiters (by notice) before its execution task reports the
        outcome; a retry must not let that late report answer for the retried run.
        """
        tasks = [t for t, rid in self._tasks.items() if rid == run_id]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def resolve(self, workflow: WorkflowDef | str) -> WorkflowDef:
        """A child's definition; it must be registered here, named or passed as object
        (a child nobody serves would leave its parent waiting for ever)."""
        if isinstance(workflow, WorkflowDef):
            if self.registry.find(workflow.name, workflow.version) is None:
                raise WorkflowNotFound(
                    f"child workflow {workflow.name!r} version {workflow.version!r} is not "
                    "registered with this worker: add it to Runtime(workflows=[...])"
                )
            return workflow
        return self.registry.get(workflow)


def _floor(
    grants: Iterable[tuple[datetime | None, float, int]],
) -> tuple[datetime, float] | None:
    """The oldest grant times (by each clock) among leases that are renewed."""
    stamps = [(at, mono) for at, mono, _ in grants if at is not None]
    if not stamps:
        return None
    return min(at for at, _ in stamps), min(mono for _, mono in stamps)


async def _cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel a background loop and wait until it has unwound."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
