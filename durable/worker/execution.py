"""One run's execution on this worker: drives its workflow coroutine and does its I/O.

The coroutine runs as an ordinary task on the service's loop. The execution watches it:
when it finishes the run is finished; when every operation it has issued is waiting on
something outside (a timer, a signal, a child) the run suspends and its slot is freed,
while the live coroutine may stay in the sticky cache to resume without replay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import msgspec

from durable import codec
from durable.context import Context
from durable.core import decide
from durable.core.events import Event, EventKind
from durable.core.history import History, RunFailure
from durable.core.state import ContinueAsNew, DriveResult, Phase, RunAborted, RunState
from durable.core.vocabulary import RunStatus
from durable.errors import (
    DurableError,
    FenceLost,
    PayloadTooLarge,
    SerializationError,
    WorkflowCancelled,
)
from durable.ids import new_run_id
from durable.store.base import BatchResult, ChildOutcome, ClaimedRun, Finish, NewRun, Suspend
from durable.telemetry import RunTelemetry
from durable.workflow import WorkflowDef

if TYPE_CHECKING:
    from durable.worker.executor import Executor

T = TypeVar("T")

log = logging.getLogger("durable.worker")

# How many loop iterations an apparently idle run must stay idle before it suspends.
# Tasks that `gather` just created, and results travelling up nested gathers, need a
# few iterations to show activity; workflow code does no I/O of its own, so a run that
# shows none for this many iterations is waiting only on what its ctx calls wait on.
_IDLE_SPINS = 16

_DEAD = Phase.DEAD  # bound once: Enum class attribute access is slow on the hot path

# The sticky cache's estimate of one suspended run's memory beyond its payloads: the
# coroutine frames, the execution, its context and state (docs/reliability.md measured
# about 8 KiB per suspended run with every coroutine kept).
ENTRY_OVERHEAD = 8 * 1024


class PendingWait(msgspec.Struct, frozen=True):
    """What a suspended run waits on, as shown in `RunInfo.pending`."""

    kind: str
    name: str
    until: datetime | None = None


class RunExecution:
    """The live state of one run on this worker; implements `durable.run_io.RunIO`.

    Its replay bookkeeping (positions, seqs, limits, replaying, parking and the phase)
    is the pure `RunState` in `self.state`; this class adds the I/O and the driving.
    """

    def __init__(
        self, executor: Executor, claimed: ClaimedRun, defn: WorkflowDef, history: History
    ) -> None:
        self.executor = executor
        self.store = executor.store
        self.committer = executor.committer
        self.run_id = claimed.run_id
        self.parent_run_id = claimed.parent_run_id
        self.defn = defn
        self.fence = claimed.fence
        self.wakeups = claimed.wakeups
        self.input = claimed.input
        self.state = RunState(
            self.run_id,
            defn.name,
            history,
            max_events=defn.max_events,
            deadline=claimed.deadline,
            execution_timeout=defn.execution_timeout,
        )
        self.buffer: list[Event] = []
        # Step records kept back in `buffer` to share the run's next commit (`defer`),
        # and the writes carrying such records still in flight (see `settle`).
        self.deferred = 0
        self._settling: list[asyncio.Future[BatchResult]] = []
        # Estimated bytes this execution keeps alive (the sticky cache's byte bound): its
        # coroutine's locals mostly hold the input and values decoded from history
        # payloads, read back or written by it.
        self.weight = (
            ENTRY_OVERHEAD
            + len(claimed.input or b"")
            + sum(len(e.payload) for e in history.events if e.payload is not None)
        )
        self.active = 0
        self.progress = 0
        self.entered = 0  # ctx operations that started (see RunState.unawaited)
        self.outcome: Finish | None = None
        self._parked: dict[int, tuple[asyncio.Future[None], PendingWait, str | None]] = {}
        self._idle = asyncio.Event()
        self.task: asyncio.Task[Any] | None = None
        self.telemetry = RunTelemetry(defn.name, defn.version, self.run_id)
        self._branches: set[asyncio.Task[Any]] = set()
        # Cleanup of a cancelled run (see `cancel_point`): the tasks the cancellation
        # reached, and whether it may still reach more (the loop turn of the first).
        self.cleanup = claimed.cleanup
        self._cancelled_tasks: set[asyncio.Task[Any]] = set()
        self._cancel_window = True
        if self.cleanup:
            self.state.move(Phase.CLOSING)
        self.ctx = Context(self)

    # -- helpers for Context ----------------------------------------------------------

    def now(self) -> datetime:
        return self.executor.clock.now()

    def op(self) -> RunExecution:
        """Marks a ctx operation as running; the run cannot suspend while any is.

        Once the run is parked as failed (non-determinism, a limit) no operation runs,
        even if workflow code caught the error: nothing more may reach the history.
        """
        if self.state.halted:
            raise RunAborted
        task = asyncio.current_task()
        if task is not self.task and task is not None:
            # A branch of gather/parallel: remembered so it can be stopped when the run
            # ends while it is still going (a sibling failed, the workflow returned).
            branches = self._branches
            if len(branches) > 64:
                self._branches = branches = {t for t in branches if not t.done()}
            branches.add(task)
        return self

    # `with execution.op():` -- the execution is its own scope: no generator and no
    # helper object per call (this is the per-step hot path), and no helper pointing
    # back at the execution (a reference cycle per run).

    def __enter__(self) -> None:
        self.active += 1
        self.progress += 1
        self.entered += 1

    def __exit__(self, *_exc: object) -> None:
        self.active -= 1
        self.progress += 1
        # Only a run with parked waits can need to suspend; waking the driver after
        # every plain step would cost a task switch per step for nothing.
        if self.active == 0 and self._parked:
            self._idle.set()

    def dispose(self) -> None:
        """This attempt is over for good (finished, abandoned, evicted): drop the context.

        Context and execution point at each other; without this, every run would be
        freed only by the cyclic garbage collector (docs/operations.md, "Memory").
        """
        self.__dict__.pop("ctx", None)

    def record(self, event: Event) -> None:
        """Keep an event to be written with the run's next commit."""
        if self.state.halted:
            raise RunAborted
        self.buffer.append(event)

    def check_payload(self, data: bytes, what: str, name: str | None = None) -> None:
        limit = self.executor.max_payload
        if limit is not None and len(data) > limit:
            raise PayloadTooLarge(
                f"{codec.label(what, name)} is {len(data)} bytes, over the limit of {limit} bytes"
            )

    def defer(self, event: Event) -> bool:
        """Keep a step's record back for the run's next commit; False: append it now.

        The workflow's code runs on with the result in memory; if its next command
        writes only to the database (the run's end, a suspension, an emitted event) the
        record shares that commit. Anything with an effect outside (a step body, a
        child, a signal taken, a hook) first makes it durable (`settle`, `flush`); a
        crash before re-runs the step, as after any body (docs/concepts.md). Only while
        this step is the run's one operation running (never behind a gather's slower
        sibling), and never in a cancelled run's cleanup (written apart).
        """
        if self.active != 1 or self.cleanup or self.state.halted:
            return False
        self.buffer.append(event)
        self.deferred += 1
        return True

    @property
    def unsettled(self) -> bool:
        """Whether step records kept back by `defer` may not be durable yet."""
        return bool(self.deferred or self._settling)

    async def settle(self) -> None:
        """Before a step body: make the step records kept back so far durable (write
        the buffer; wait for another branch's write in flight that carries some)."""
        others = self._settling[:] if self._settling else None
        if self.deferred:
            state = self.state
            if state.phase is _DEAD or state.failure is not None:
                raise RunAborted
            events = self.buffer
            self.buffer = []
            run_id = self.run_id
            future = self.committer.enqueue(run_id, self.fence, events)
            self._carries_deferred(future)
            try:
                result = await future
            except Exception as exc:
                self._write_failed(exc)
            finally:
                self._settling.remove(future)
            if run_id in result.rejected:
                self._refused(result)
        if others:
            waiting = [f for f in others if not f.done()]
            if waiting:
                await asyncio.wait(waiting)
            for f in others:
                if f.cancelled() or f.exception() is not None or self.run_id in f.result().rejected:
                    raise RunAborted  # the branch that wrote it ends the attempt

    def _carries_deferred(self, future: asyncio.Future[BatchResult]) -> None:
        """`future` writes the records kept back: `settle`s wait for it till its writer is done."""
        self.deferred = 0
        self._settling.append(future)

    async def append(self, event: Event) -> None:
        """Write `event` (and anything buffered before it) durably, via group commit.

        The per-step path: it awaits the committer's future itself (what `_submit` does
        for the other writes, without its frame and keyword arguments).
        """
        buffer = self.buffer
        if buffer:
            events = [*buffer, event]
            self.buffer = []
        else:
            events = [event]
        if self.cleanup:
            await self._cleanup_write(events, done=False)
            return
        state = self.state
        if state.phase is _DEAD or state.failure is not None:
            raise RunAborted
        run_id = self.run_id
        future = self.committer.enqueue(run_id, self.fence, events)
        carries = self.deferred
        if carries:
            self._carries_deferred(future)
        try:
            result = await future
        except Exception as exc:
            self._write_failed(exc)
        finally:
            if carries:
                self._settling.remove(future)
        if run_id in result.rejected:
            self._refused(result)

    async def flush(self) -> None:
        if self.buffer:
            events = self.buffer
            self.buffer = []
            if self.cleanup:
                await self._cleanup_write(events, done=False)
                return
            await self._submit(events=events)

    async def _cleanup_write(self, events: list[Event], *, done: bool) -> None:
        """A cancelled run's cleanup writes past the group commit (which only writes
        running runs): fenced, and only while its cleanup is still owed."""
        if self.state.phase is _DEAD:
            raise RunAborted
        try:
            accepted = await self.store.append_cleanup(
                self.run_id, self.fence, events, self.now(), done=done
            )
        except Exception as exc:
            log.warning("run %s: cleanup write failed: %s", self.run_id, exc)
            self.abandon()
            raise RunAborted from exc
        if not accepted:
            self.abandon()
            raise RunAborted

    async def _submit(
        self,
        events: list[Event],
        finish: Finish | None = None,
        suspend: Suspend | None = None,
    ) -> bool:
        """Write through the group commit; True when a suspend found a wake-up waiting."""
        state = self.state
        if state.phase is _DEAD or (state.failure is not None and finish is None):
            raise RunAborted
        run_id = self.run_id
        if events:
            self.weight += sum(len(e.payload) for e in events if e.payload is not None)
        future = self.committer.enqueue(run_id, self.fence, events, finish, suspend)
        carries = self.deferred
        if carries:
            self._carries_deferred(future)
        try:
            result = await future
        except Exception as exc:
            self._write_failed(exc)
        finally:
            if carries:
                self._settling.remove(future)
        if run_id in result.rejected:
            self._refused(result)
        return run_id in result.woken

    def _write_failed(self, exc: Exception) -> NoReturn:
        log.warning("run %s: write failed, abandoning this attempt: %s", self.run_id, exc)
        self.abandon()
        raise RunAborted from exc

    def _refused(self, result: BatchResult) -> NoReturn:
        """The commit refused this run's writes: stop this attempt."""
        failed = result.failed.get(self.run_id)
        if failed is not None:
            # The database can never store these writes: the committer ended the run
            # `failed` in their place. Hand that outcome to this process's waiters.
            self.outcome = Finish(self.run_id, self.fence, "failed", None, failed, None)
            self.executor.on_finished(self.run_id, self.outcome)
        elif self.run_id in result.closed:
            self.state.move(Phase.CLOSING)
        self.abandon()
        raise RunAborted

    def abandon(self) -> None:
        """Stop writing for this run; another worker (or a later claim) continues it."""
        self.state.move(Phase.DEAD)
        self._idle.set()

    async def _guard(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one direct store operation for this run.

        Losing the fence, or the database failing mid-operation, abandons this attempt
        (the run is continued from history later) instead of failing the workflow: an
        infrastructure error is not the workflow's error.
        """
        self.ensure_writable()
        await self.flush()
        try:
            return await call()
        except FenceLost:
            self.abandon()
            raise RunAborted from None
        except DurableError:
            raise
        except Exception as exc:
            log.warning("run %s: store error, abandoning this attempt: %s", self.run_id, exc)
            self.abandon()
            raise RunAborted from exc

    def ensure_writable(self) -> None:
        """Raise unless this execution may still write: not dead, not parked, not closing."""
        if self.state.halted:
            raise RunAborted
        if self.state.phase is Phase.CLOSING:
            raise self._cancelled()

    async def take_message(
        self, kind: str, name: str, make_event: Callable[[bytes | None], Event]
    ) -> tuple[bool, bytes | None]:
        return await self._guard(
            lambda: self.store.take_message(
                self.run_id, self.fence, kind, name, make_event, self.now()
            )
        )

    async def create_hook(
        self, event: Event, token: str, name: str, metadata: bytes | None = None
    ) -> None:
        await self._guard(
            lambda: self.store.create_hook(
                self.run_id, self.fence, event, token, name, self.now(), metadata
            )
        )

    async def start_child(
        self, event: Event, defn: WorkflowDef, child_id: str, data: bytes
    ) -> None:
        child = NewRun(
            run_id=child_id,
            workflow=defn.name,
            version=defn.version,
            input=data,
            created_at=self.now(),
            parent_run_id=self.run_id,
            deadline_s=defn.execution_timeout,
            queue=None if defn.queue is None else defn.queue.name,
        )
        await self._guard(
            lambda: self.store.start_child(self.run_id, self.fence, event, child, self.now())
        )
        self.executor.poke()  # our own new run: claim it now, whatever the listen_delay

    async def child_outcome(self, run_id: str) -> ChildOutcome | None:
        return await self._guard(lambda: self.store.child_outcome(run_id))

    def resolve_workflow(self, workflow: WorkflowDef | str) -> WorkflowDef:
        return self.executor.resolve(workflow)

    def new_run_id(self) -> str:
        return new_run_id()

    async def park(
        self, pos: int, kind: str, name: str, until: datetime | None, key: str | None
    ) -> None:
        """Wait until the run is woken again; the run may suspend meanwhile."""
        if self.state.phase is Phase.CLOSING:
            raise self._cancelled()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._parked[pos] = (future, PendingWait(kind, name, until), key)
        self.active -= 1
        self.progress += 1
        self._idle.set()
        try:
            await future
        finally:
            self._parked.pop(pos, None)
            self.active += 1
            self.progress += 1
        if self.state.phase is Phase.DEAD:
            raise RunAborted
        if self.state.deadline is not None:
            self.state.check_deadline(self.now())

    async def wait_until(self, pos: int, kind: str, name: str, until: datetime) -> None:
        if self.cleanup and kind == "retry" and self.state.phase is Phase.CLOSING:
            # A cleanup step's retry: the cleanup cannot suspend, so it waits here
            # (bounded by the cancel grace, which ends the whole cleanup).
            self.cancel_point()
            delay = (until - self.now()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            return
        while self.now() < until:
            await self.park(pos, kind, name, until, None)

    def cancel_point(self) -> None:
        """Where a cancelled run's replay meets what history cannot answer.

        The cancellation is delivered (WorkflowCancelled) to every task of the run that
        reaches such a point in the loop turn of the first one: the tasks of a gather
        reach their open operations together, as a cancelled coroutine's branches would
        all be cancelled. After that turn, and in a task that already received it,
        operations are the cleanup code's own: they run and are recorded.
        """
        if self.state.phase is not Phase.CLOSING:
            return
        task = asyncio.current_task()
        if task in self._cancelled_tasks or not self._cancel_window:
            return
        raise self._cancelled()

    def _cancelled(self) -> WorkflowCancelled:
        """The WorkflowCancelled delivered to the current task (waits always get one)."""
        if self._cancel_window and not self._cancelled_tasks:
            asyncio.get_running_loop().call_soon(self._close_cancel_window)
        task = asyncio.current_task()
        if task is not None:
            self._cancelled_tasks.add(task)
        return WorkflowCancelled(f"run {self.run_id!r} was cancelled", run_id=self.run_id)

    def _close_cancel_window(self) -> None:
        self._cancel_window = False

    # -- driving ----------------------------------------------------------------------

    async def _main(self) -> Any:
        value = self.defn.convert_input(codec.decode(self.input))
        # ctx.context is rebuilt here, once per execution (never recorded): a sticky
        # resume keeps this coroutine and its context; a replay builds a new one.
        await self.ctx._provide(self.executor.context_provider, value)
        return await self.defn.fn(self.ctx, value)

    def resume(self, claimed: ClaimedRun) -> None:
        """Take a sticky run back after a new claim: new fence, wake every parked wait."""
        self.fence = claimed.fence
        self.wakeups = claimed.wakeups
        for future, _, _ in list(self._parked.values()):
            if not future.done():
                future.set_result(None)

    async def drive(self) -> DriveResult:
        """Run until the workflow finishes, suspends or must be abandoned."""
        if self.cleanup:
            return await self._drive_cleanup()
        state = self.state
        with self.telemetry.attempt():
            if self.task is None:
                self.task = asyncio.create_task(self._main(), name=f"durable-run-{self.run_id}")
                self.task.add_done_callback(self._task_done)
            if state.deadline is not None:
                try:
                    state.check_deadline(self.now())
                except RunAborted:
                    return await self._finish()
            while True:
                await self._idle.wait()
                self._idle.clear()
                phase = state.phase
                if phase is Phase.DEAD:
                    return DriveResult.ABANDONED
                if phase is Phase.CLOSING and self.task.done():
                    return DriveResult.FINISHED
                if state.failure is not None or self.task.done():
                    return await self._finish()
                if self.active == 0 and self._parked and await self._stays_idle():
                    return await self._suspend()

    async def _drive_cleanup(self) -> DriveResult:
        """Run a cancelled run's cleanup: replay to where it stopped, deliver
        WorkflowCancelled there, let its cleanup code run (recorded) until it ends or
        the cancel grace (`state.deadline`) passes, then record `cleanup_finished`."""
        state = self.state
        deadline = state.deadline
        self.task = asyncio.create_task(self._main(), name=f"durable-cleanup-{self.run_id}")
        self.task.add_done_callback(self._task_done)
        outcome = "completed"
        try:
            async with asyncio.timeout(
                None if deadline is None else max((deadline - self.now()).total_seconds(), 0)
            ):
                while not self.task.done() and state.failure is None:
                    if state.phase is _DEAD:
                        return DriveResult.ABANDONED
                    await self._idle.wait()
                    self._idle.clear()
        except TimeoutError:
            outcome = "cancel_grace expired"
        if not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=1.0)
        self._stop_branches()
        if state.phase is _DEAD:
            return DriveResult.ABANDONED
        events: list[Event] = []
        if state.failure is not None:
            expired = deadline is not None and self.now() >= deadline
            outcome = "cancel_grace expired" if expired else state.failure
            if state.failure_event:
                events = self.buffer
        else:
            events = self.buffer
            exc = None if self.task.cancelled() else self.task.exception()
            if isinstance(exc, RunAborted):
                return DriveResult.ABANDONED
            if exc is not None and not isinstance(exc, WorkflowCancelled | ContinueAsNew):
                outcome = f"failed: {type(exc).__name__}: {exc}"
        self.buffer = []
        end = state.run_event(
            EventKind.CLEANUP_FINISHED, decide.cleanup_payload(outcome), self.now()
        )
        try:
            await self._cleanup_write([*events, end], done=True)
        except RunAborted:
            return DriveResult.ABANDONED
        return DriveResult.FINISHED

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        # Mark the outcome as seen: an evicted or abandoned coroutine's exit is expected.
        if not task.cancelled():
            task.exception()
        self._idle.set()

    async def _stays_idle(self) -> bool:
        mark = self.progress
        for _ in range(_IDLE_SPINS):
            await asyncio.sleep(0)
            if (
                self.progress != mark
                or self.active
                or self.state.phase is Phase.DEAD
                or (self.task and self.task.done())
            ):
                self._idle.set()
                return False
        return True

    async def _suspend(self) -> DriveResult:
        waits = [(w, key) for _, w, key in self._parked.values()]
        ready_at = self.state.ready_at([w.until for w, _ in waits])
        suspend = Suspend(
            run_id=self.run_id,
            fence=self.fence,
            ready_at=ready_at,
            waiting_on=[key for _, key in waits if key is not None],
            pending=codec.encode([w for w, _ in waits]),
            seen_wakeups=self.wakeups,
        )
        events = self.buffer
        self.buffer = []
        try:
            woken = await self._submit(events=events, suspend=suspend)
        except RunAborted:
            return DriveResult.ABANDONED
        if ready_at is not None:
            self.executor.note_wake_at(ready_at)
        if woken:
            self.executor.poke()
        return DriveResult.SUSPENDED

    def _stop_branches(self) -> None:
        for branch in self._branches:
            if not branch.done():
                branch.cancel()
        self._branches.clear()

    async def _finish(self) -> DriveResult:
        task = self.task
        if task is not None and not task.done():
            task.cancel()
        self._stop_branches()
        state = self.state
        if state.phase is Phase.DEAD:
            return DriveResult.ABANDONED
        if state.phase is Phase.CLOSING:
            return DriveResult.FINISHED
        finish: Finish
        events: list[Event] = []
        if state.failure is not None:
            finish = self._failed(state.failure, with_event=state.failure_event)
            # Parked (non-determinism, a limit): the run stops until someone acts.
            log.error(
                "run %s of workflow %r parked as failed: %s",
                self.run_id,
                self.defn.name,
                state.failure,
            )
            events = self.buffer if state.failure_event else self._kept_steps()
        else:
            assert task is not None
            if task.cancelled():
                return DriveResult.ABANDONED
            exc = task.exception()
            if isinstance(exc, RunAborted):
                return DriveResult.ABANDONED
            if isinstance(exc, ContinueAsNew):
                return await self._continue(exc.input)
            events = self.buffer
            if exc is None and state.unawaited(self.entered) > 0:
                finish = self._failed(await self._unawaited_reason())
                log.error(
                    "run %s of workflow %r failed: %s", self.run_id, self.defn.name, finish.error
                )
            elif exc is None:
                finish = self._completed(task.result())
                if finish.event is None:  # non-determinism: history stays exactly as it was
                    events = self._kept_steps()
            else:
                finish = self._failed(
                    f"{type(exc).__name__}: {exc}", traceback=decide.run_traceback(exc)
                )
                log.error(
                    "run %s of workflow %r failed: %s: %s",
                    self.run_id,
                    self.defn.name,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
        self.buffer = []
        try:
            await self._submit(events=events, finish=finish)
        except RunAborted:
            return DriveResult.ABANDONED
        self.outcome = finish
        return DriveResult.FINISHED

    def _kept_steps(self) -> list[Event]:
        """The step records `defer` kept back, when the rest of the buffer is dropped
        (a run parked without run_failed): their steps ran, so they are written."""
        if not self.deferred:
            return []
        return [e for e in self.buffer if e.kind == EventKind.STEP_COMPLETED]

    async def _unawaited_reason(self) -> str:
        """Name the positions taken by ctx operations that never started: they have no
        event in history, nor in what this execution wrote (read back; rare path)."""
        try:
            written = await self.store.load_events(self.run_id)
        except Exception:
            written = []
        events = [*self.state.history.events, *written, *self.buffer]
        recorded = {e.pos: f"{e.kind} {e.name!r}" for e in reversed(events) if e.pos >= 0}
        missing = [p for p in range(self.state.next_pos) if p not in recorded]
        return self.state.unawaited_reason(missing, recorded)

    async def _continue(self, data: bytes) -> DriveResult:
        """Continue-as-new: end this run and insert its successor in one store call."""
        executor = self.executor
        new_id = new_run_id()
        events = [
            *self.buffer,
            self.state.run_event(
                EventKind.RUN_CONTINUED, decide.continued_payload(new_id), self.now()
            ),
        ]
        self.buffer = []
        self.deferred = 0  # written by continue_run below, or the attempt ends
        # Local dispatch, as for triggers: the successor is inserted leased to this
        # worker and starts without a claim query (what keeps long chains fast).
        local = executor.claiming and executor.reserve(self.defn)
        new = NewRun(
            run_id=new_id,
            workflow=self.defn.name,
            version=self.defn.version,
            input=data,
            created_at=self.now(),
            deadline_s=self.defn.execution_timeout,
            owner=executor.owner if local else None,
            lease_s=executor.lease_s,
            continued_from=self.run_id,
        )
        try:
            created = await self.store.continue_run(
                self.run_id, self.fence, events, new, self.now()
            )
        except Exception as exc:
            if local:
                executor.unreserve()
            if not isinstance(exc, FenceLost):
                log.warning("run %s: continue-as-new failed: %s", self.run_id, exc)
            self.abandon()
            return DriveResult.ABANDONED
        if local:
            if created.claimed is not None:
                executor.start_reserved(created.claimed)
            else:
                executor.unreserve()
        self.outcome = None  # result() waiters re-read the run and follow continued_as
        return DriveResult.FINISHED

    def _failed(
        self, error: str, *, with_event: bool = True, traceback: str | None = None
    ) -> Finish:
        event = None
        if with_event:
            # With a traceback the payload is a RunFailure (read back by get_run as
            # RunInfo.traceback); without one it stays the error text, as before.
            payload = codec.encode(error if traceback is None else RunFailure(error, traceback))
            event = self.state.run_event(EventKind.RUN_FAILED, payload, self.now())
        return Finish(self.run_id, self.fence, RunStatus.FAILED, None, error, event)

    def _completed(self, result: Any) -> Finish:
        removed = self.state.unvisited()
        if removed is not None:
            return self._failed(removed, with_event=False)
        try:
            output = codec.encode(result, what="result of workflow", name=self.defn.name)
            self.check_payload(output, "result of workflow", self.defn.name)
        except (SerializationError, PayloadTooLarge) as exc:
            return self._failed(f"{type(exc).__name__}: {exc}")
        event = self.state.run_event(EventKind.RUN_COMPLETED, None, self.now())
        return Finish(self.run_id, self.fence, RunStatus.COMPLETED, output, None, event)

    def cancellation_delivered(self) -> None:
        """A user cancel reached the workflow: let its cleanup code await normally."""
        if self.state.phase is Phase.CLOSING:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()

    @property
    def dead(self) -> bool:
        """This attempt stopped writing (abandoned, evicted, lease lost)."""
        return self.state.phase is Phase.DEAD

    def evict(self) -> None:
        """Drop the live coroutine; the next claim replays from history instead."""
        self.state.move(Phase.DEAD)
        self._idle.set()
        self._stop_branches()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        for future, _, _ in list(self._parked.values()):
            if not future.done():
                future.cancel()
        self.dispose()
