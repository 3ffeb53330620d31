"""The `Runtime`: the public entry point that triggers, inspects, signals and executes runs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import msgspec

from durable import codec
from durable.batching import Coalescer
from durable.clock import SYSTEM_CLOCK, Clock, DatabaseClock, follow_database
from durable.config import DEFAULT_STICKY_BYTES, RuntimeConfig
from durable.core.events import EventKind
from durable.core.vocabulary import TERMINAL, Notice, parse_notice
from durable.core.vocabulary import RunStatus as RunStatus
from durable.diagnostics import FailureOps, traceback_of
from durable.durations import parse_duration
from durable.errors import (
    PayloadTooLarge,
    RunNotFound,
    ValidationError,
)
from durable.handle import RunHandle as RunHandle
from durable.ids import new_run_id
from durable.outage import retry_transient
from durable.queues import flow_options, wait_reasons
from durable.records import OUTSIDE_POS as OUTSIDE_POS
from durable.records import Event as Event
from durable.records import HookInfo as HookInfo
from durable.records import RunInfo as RunInfo
from durable.records import run_info
from durable.runtime_ops import RuntimeOps
from durable.store import (
    Created,
    Finish,
    Listener,
    NewRun,
    RunRecord,
    Store,
    is_memory_url,
    store_for,
)
from durable.tags import check_tags as check_tags
from durable.worker.executor import Executor
from durable.workflow import Registry, WorkflowDef, check_name

log = logging.getLogger("durable.runtime")


def _bad_id(run_id: object) -> bool:
    """No run can have this id (not a string, or a NUL that PostgreSQL refuses)."""
    return not isinstance(run_id, str) or "\x00" in run_id


class Runtime(RuntimeOps, FailureOps):
    """Opens a store, applies migrations and (with `worker=True`) executes runs.

    Use as `async with Runtime(dsn, workflows=[...]) as rt:`. `dsn` is a PostgreSQL
    DSN or `"memory://"` (the in-process store: one process, nothing persisted);
    `store=` takes any object implementing `durable.store.Store` instead (the caller
    opens and closes it, so several runtimes may share one).
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        workflows: Sequence[WorkflowDef] = (),
        worker: bool = True,
        concurrency: int = 1000,
        lease: Any = "30s",
        schema: str = "durable",
        timezone: str = "UTC",
        poll_interval: Any = "1s",
        sticky_cache: int = 10_000,
        sticky_cache_bytes: int = DEFAULT_STICKY_BYTES,
        max_payload_bytes: int | None = 16 * 1024 * 1024,
        shutdown_grace: Any = "10s",
        pool_size: int = 10,
        listen: bool = True,
        local_dispatch: bool = True,
        cancel_grace: Any = "30s",
        clock: Clock | None = None,
        store: Store | None = None,
        context_provider: Callable[[Any], Any] | None = None,
        listen_delay: Any = None,
    ) -> None:
        config = RuntimeConfig.build(
            worker=worker,
            concurrency=concurrency,
            lease=lease,
            schema=schema,
            timezone=timezone,
            poll_interval=poll_interval,
            sticky_cache=sticky_cache,
            sticky_cache_bytes=sticky_cache_bytes,
            max_payload_bytes=max_payload_bytes,
            shutdown_grace=shutdown_grace,
            pool_size=pool_size,
            listen=listen,
            local_dispatch=local_dispatch,
            listen_delay=listen_delay,
            cancel_grace=cancel_grace,
        )
        self._setup(dsn, config, workflows, clock, store, context_provider)

    @classmethod
    def from_config(
        cls,
        config: RuntimeConfig,
        dsn: str | None = None,
        *,
        workflows: Sequence[WorkflowDef] = (),
        clock: Clock | None = None,
        store: Store | None = None,
        context_provider: Callable[[Any], Any] | None = None,
    ) -> Self:
        """A Runtime with these settings (e.g. another runtime's `config`, replaced)."""
        rt = cls.__new__(cls)
        rt._setup(dsn, config, workflows, clock, store, context_provider)
        return rt

    def _setup(
        self,
        dsn: str | None,
        config: RuntimeConfig,
        workflows: Sequence[WorkflowDef],
        clock: Clock | None,
        store: Store | None,
        context_provider: Callable[[Any], Any] | None = None,
    ) -> None:
        if dsn is not None and store is not None:
            raise ValueError("pass either a dsn or a store, not both")
        self._dsn = dsn
        self.config = config
        self.registry = Registry(workflows)
        # A host's wall clock is only its opinion: beside a database shared by several
        # hosts, every lease, claim and timer follows the database's clock (issue 16).
        given = clock or SYSTEM_CLOCK
        self.clock: Clock = given if given.authoritative else DatabaseClock(given)
        self._clock_task: asyncio.Task[None] | None = None
        if context_provider is not None and not callable(context_provider):
            raise TypeError(
                f"invalid context_provider {context_provider!r}: must be a callable (run_info)"
            )
        self.context_provider = context_provider
        self._given_store = store
        self._store: Store | None = None
        self._side_store: Callable[[], Store] | None = None
        self._executor: Executor | None = None
        self._listener: Listener | None = None
        self._waiters: dict[str, list[asyncio.Event]] = {}
        self._outcomes: dict[str, Finish] = {}
        # Handles of runs that trigger() created, while both live (see _watch).
        self._watched: weakref.WeakValueDictionary[str, RunHandle] = weakref.WeakValueDictionary()
        # Runs being inserted by trigger(), True once a notice may have told their end.
        self._inserting: dict[str, bool] = {}
        self._scheduler: Any = None
        self._has_queues = False
        self._open = False
        self._subscribers: list[Callable[[str, str], None]] = []
        # Concurrent triggers share one INSERT and one commit per batch.
        # Bounded by bytes too; a failing batch is split so one bad trigger fails alone.
        self._creator: Coalescer[NewRun, Created] = Coalescer(
            self._create_runs, weigh=lambda r: len(r.input) + 256, what="trigger"
        )

    # -- settings (see RuntimeConfig) -------------------------------------------------

    @property
    def worker(self) -> bool:
        return self.config.worker

    @property
    def concurrency(self) -> int:
        return self.config.concurrency

    @property
    def lease_s(self) -> float:
        return self.config.lease_s

    @property
    def schema(self) -> str:
        return self.config.schema

    @property
    def timezone(self) -> str:
        return self.config.timezone

    @property
    def poll_interval(self) -> float:
        return self.config.poll_interval

    @property
    def sticky_cache(self) -> int:
        return self.config.sticky_cache

    @property
    def max_payload(self) -> int | None:
        return self.config.max_payload_bytes

    @property
    def shutdown_grace(self) -> float:
        return self.config.shutdown_grace

    @property
    def pool_size(self) -> int:
        return self.config.pool_size

    @property
    def listen(self) -> bool:
        return self.config.listen

    @property
    def local_dispatch(self) -> bool:
        return self.config.local_dispatch

    # -- lifecycle --------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("Runtime is not started; use `async with Runtime(...) as rt:`")
        return self._store

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise RuntimeError("Runtime is not started; use `async with Runtime(...) as rt:`")
        return self._executor

    async def _resolve_dsn(self) -> str:
        """The DSN given, else $DURABLE_DSN, else an embedded server (started or reused)."""
        if self._dsn:
            return self._dsn
        env = os.environ.get("DURABLE_DSN")
        if env:
            return env
        from durable import embedded

        # initdb and server start block for seconds: keep the event loop free meanwhile.
        return await asyncio.to_thread(embedded.ensure_server)

    async def _open_store(self) -> Store:
        """The given store, else one built from the DSN (opened here, closed on exit)."""
        if self._given_store is not None:
            return self._given_store
        dsn = await self._resolve_dsn()
        store = store_for(dsn, schema=self.schema, pool_size=self.pool_size)
        await store.open()
        if not is_memory_url(dsn):
            # The watchdog's own store, opened on its thread only while a step blocks
            # the loop (durable/worker/watchdog.py).
            self._side_store = lambda: store_for(dsn, schema=self.schema, pool_size=1)
        return store

    async def __aenter__(self) -> Runtime:
        store = await self._open_store()
        self._store = store
        try:
            # Before anything reads the clock: the first sample of the database's.
            self._clock_task = await follow_database(self.clock, store.database_time)
            if self.migrate_on_start:
                await store.migrate()
                await self._declare_queues()
            else:
                await store.check_schema()
            self._executor = Executor(
                store,
                self.registry,
                clock=self.clock,
                concurrency=self.concurrency,
                lease_s=self.lease_s,
                poll_interval=self.poll_interval,
                sticky_size=self.sticky_cache,
                max_payload=self.max_payload,
                on_finished=self._notify_finished,
                context_provider=self.context_provider,
                listen_delay=self.config.listen_delay,
                sticky_bytes=self.config.sticky_cache_bytes,
                side_store=self._side_store,
            )
            self._executor.on_changed = self._publish
            self._executor.start_committer()
            if self.listen:
                self._listener = await store.listen(self._on_notice, self._on_reconnect)
            if self.worker:
                self._executor.start_worker()
                await self._start_scheduler()
        except BaseException:
            await self._shutdown()
            raise
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._open = False
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
            self._clock_task = None
        if self._scheduler is not None:
            await self._scheduler.stop()
            self._scheduler = None
        if self._executor is not None:
            await self._executor.stop(self.shutdown_grace)
            self._executor = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._store is not None:
            if self._given_store is None:
                await self._store.close()
            self._store = None

    async def _start_scheduler(self) -> None:
        # Always, even with no schedule declared: the scheduler also retires schedules
        # removed from code and picks up ones added later with `register`.
        from durable.schedules import Scheduler

        self._scheduler = Scheduler(self)
        await self._scheduler.start()

    # -- notifications ----------------------------------------------------------------

    def _on_notice(self, payload: str) -> None:
        kind, run_ids = parse_notice(payload)
        if kind is Notice.DONE:
            executor = self._executor
            for run_id in run_ids:
                if self._executor is not None:
                    self._executor.forget(run_id)
                self._notify_finished(run_id, None)
                if executor is None or not executor.is_live(run_id):
                    self._watched.pop(run_id, None)  # it ended elsewhere: no hand-over
                self._publish(run_id, "finished")
            # A run that ended may have freed a queue slot another worker's run awaits.
            if self._executor is not None and self.worker and self._has_queues:
                self._executor.poke_queues()
        elif kind is Notice.CANCELLED:
            if self._executor is not None:
                self._executor.cancel_local(run_ids[0])
        else:
            self._publish("", "wake")
            if self._executor is not None and self.worker:
                self._executor.poke(notice=True)

    def _on_reconnect(self) -> None:
        """Notices were lost while the listener was down: re-check everything once."""
        for handle in list(self._watched.values()):
            handle._unended = False  # its end may have been among the lost notices
        for run_id in self._inserting:
            self._inserting[run_id] = True
        if self._executor is not None:
            self._executor.poke()
        for events in self._waiters.values():
            for ev in events:
                ev.set()

    def _notify_finished(self, run_id: str, outcome: Finish | None) -> None:
        """Wake this process's result() waiters; a local finish hands them its outcome.

        Without an outcome (a notice that it ended, a cancel here, or an execution here
        that stopped short of the end) a watched handle's result() reads the run again.
        """
        if self._watched:
            if outcome is not None:
                handle = self._watched.pop(run_id, None)
                if handle is not None:
                    handle._outcome = outcome
            else:
                handle = self._watched.get(run_id)
                if handle is not None:
                    handle._unended = False
        if run_id in self._inserting:
            self._inserting[run_id] = True
        waiters = self._waiters.get(run_id)
        if not waiters:
            return
        if outcome is not None:
            self._outcomes[run_id] = outcome
        for ev in waiters:
            ev.set()

    async def _wait_finished(
        self, run_id: str, handle: RunHandle | None = None
    ) -> tuple[str, bytes | None, str | None]:
        """Wait for the run's end: (status, output, error).

        While the run executes in this process its end is handed over here (no query at
        all); otherwise one read, then NOTIFY (or this process's finish) wakes the wait
        and one more read takes the outcome. Outcomes are kept only while someone waits.
        Polling is the fallback: rare while LISTEN is up, and never for a live local run.
        The first read is skipped for a `handle` known not to have ended (`_unended`):
        a run this process created that still waits for a queue slot would otherwise
        cost one read per result() call, a storm that delays the claims starting them.
        """
        ev = asyncio.Event()
        self._waiters.setdefault(run_id, []).append(ev)
        # Read after registering: a notice of its end from now on wakes `ev`.
        unended = handle is not None and handle.run_id == run_id and handle._unended
        if handle is not None:
            handle._unended = False  # once: any later wake-up reads
        try:
            listening = self._listener is not None and self._listener.active
            # With LISTEN up every finish sends a notice (and a reconnect wakes all
            # waiters), so polling only guards against the unforeseen.
            delay = max(self.poll_interval * 5, 1.0) if listening else 0.02
            cap = max(self.poll_interval * 50, 10.0) if listening else max(self.poll_interval, 0.02)
            executor = self._executor
            while True:
                outcome = self._outcomes.get(run_id)
                if outcome is not None:
                    return outcome.status, outcome.output, outcome.error
                if unended:
                    unended = False
                elif executor is None or not executor.is_live(run_id):
                    # The wait outlives database outages: its caller's timeout bounds it.
                    rec = await retry_transient(functools.partial(self._record, run_id))
                    if rec.status in TERMINAL:
                        return rec.status, rec.output, rec.error
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await ev.wait()
                ev.clear()
                delay = min(delay * 2, cap)
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None:
                waiters.remove(ev)
                if not waiters:
                    del self._waiters[run_id]
                    self._outcomes.pop(run_id, None)

    # -- public API -------------------------------------------------------------------

    def register(self, *workflows: WorkflowDef) -> None:
        """Add workflows (or versions) this runtime can start and execute."""
        for w in workflows:
            self.registry.register(w)
        if any(w.queue is not None for w in workflows):
            # Its limits are recorded by the first claim (register is not async).
            self._has_queues = True

    def _workflow(self, workflow: WorkflowDef | str, version: str | None) -> WorkflowDef:
        if isinstance(workflow, WorkflowDef):
            return workflow
        if isinstance(workflow, str):
            return self.registry.get(workflow, version)
        raise TypeError(f"expected a @workflow or a workflow name, got {workflow!r}")

    def _check_size(self, data: bytes, what: str) -> None:
        if self.max_payload is not None and len(data) > self.max_payload:
            raise PayloadTooLarge(
                f"{what} is {len(data)} bytes, over the limit of {self.max_payload} bytes"
            )

    async def trigger(
        self,
        workflow: WorkflowDef | str,
        input: Any = None,
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        version: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        key: str | None = None,
        priority: int = 0,
        delay: Any = None,
        debounce: tuple[str, Any] | None = None,
        execute: bool = False,
    ) -> RunHandle:
        """Start a run; returns once it is durably recorded.

        The same `run_id`, or the same `idempotency_key` for this workflow (keys are
        scoped per workflow name), returns the existing run and starts nothing.
        `parent_run_id` records lineage only (the parent does not wait); `tags` label the
        run for `list_runs(tags=...)`. `execute=True` runs a new run here until its first
        suspension or its end before returning (also with worker=False).
        Flow control (docs/flow-control.md): `key` (per-key limits of the workflow's
        queue), `priority` (lower starts first within the queue), `delay` (earliest
        start = now + delay), `debounce=(key, window)` (collapse into the pending run of
        that key, which starts `window` after the last trigger, with the last input).
        """
        defn = self._workflow(workflow, version)
        flow = flow_options(defn.queue, key=key, priority=priority, delay=delay, debounce=debounce)
        if flow.debounce_key is not None and (run_id is not None or idempotency_key is not None):
            raise ValidationError(
                f"invalid debounce {debounce!r} with a run_id or idempotency_key: a "
                "debounced trigger returns the pending run of its debounce key"
            )
        if run_id is not None:
            check_name(run_id, "run id")
        if idempotency_key is not None:
            check_name(idempotency_key, "idempotency key")
        tag_map = None if tags is None else check_tags(tags)
        if parent_run_id is not None:
            await self._record(parent_run_id)
        value = defn.validate_input(input)
        data = codec.encode(value, what=f"input of workflow {defn.name!r}")
        self._check_size(data, f"input of workflow {defn.name!r}")
        executor = self.executor
        if execute and flow.deferred:
            raise ValidationError(
                f"invalid execute=True for workflow {defn.name!r}: a queued, delayed or "
                "debounced run starts through a claim, never in the caller"
            )
        # A queued, delayed or debounced run starts through a claim, never locally.
        local = (
            execute or (self.worker and self.local_dispatch and not flow.deferred)
        ) and executor.reserve(defn, execute)
        now = self.clock.now()
        ready_at = flow.ready_at(now)
        new = NewRun(
            run_id=run_id or new_run_id(),
            workflow=defn.name,
            version=defn.version,
            input=data,
            created_at=now,
            idempotency_key=idempotency_key,
            deadline_s=defn.execution_timeout,
            owner=executor.owner if local else None,
            lease_s=self.lease_s,
            parent_run_id=parent_run_id,
            tags=tag_map,
            ready_at=ready_at,
            queue=flow.queue,
            queue_key=flow.key,
            priority=flow.priority,
            debounce_key=flow.debounce_key,
        )
        if ready_at is not None and self.worker:
            executor.note_wake_at(ready_at)
        if flow.debounce_key is not None:
            created = await self.store.create_debounced(new, now)
            return RunHandle(self, created.run_id, created.created)
        # With LISTEN up from before the insert, no end of the new run can go unnoticed.
        listening = not local and self._listener is not None and self._listener.active
        if listening:
            self._inserting[new.run_id] = False
        try:
            result = await self._creator.submit(new)
        except BaseException:
            if local:
                executor.unreserve()
            raise
        finally:
            ended = self._inserting.pop(new.run_id, True)
        handle = RunHandle(self, result.run_id, result.created)
        if listening and result.created and not ended:
            handle._unended = True
            self._watch(handle)
        if local:
            if result.claimed is not None:
                executor.start_reserved(result.claimed)
                self._watch(handle)
            else:
                executor.unreserve()
        if result.created:
            self._publish(result.run_id, "created")
            if execute:
                await executor.settle(result.run_id)
        return handle

    def _watch(self, handle: RunHandle) -> None:
        """Let this process's finish of the run reach `handle` directly (and a notice
        of its end clear `handle._unended`).

        A run that ends before anyone calls result() would otherwise cost a query to
        learn its outcome. Held weakly: a handle the caller dropped keeps nothing, and
        at most one entry per run triggered here (removed when it finishes here).
        """
        self._watched[handle.run_id] = handle

    async def _create_runs(self, runs: Sequence[NewRun]) -> list[Created]:
        return await self.store.create_runs(runs, self.clock.now())

    def handle(self, run_id: str) -> RunHandle:
        """A handle for an existing run id (not checked until used)."""
        return RunHandle(self, run_id, created=False)

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Deliver a signal; buffered until the run waits for it. RunNotFound / RunClosed."""
        check_name(name, "signal name")
        data = codec.encode(payload, what=f"payload of signal {name!r}")
        self._check_size(data, f"payload of signal {name!r}")
        await self.store.signal(run_id, name, data, self.clock.now())
        self._publish(run_id, "signal")

    async def execute_hook(self, token: str, payload: Any = None) -> str:
        """Complete a hook once; returns its run id. RunNotFound / RunClosed."""
        if not isinstance(token, str) or not token or "\x00" in token:
            raise RunNotFound("no hook with that token")
        data = codec.encode(payload, what="hook payload")
        self._check_size(data, "hook payload")
        run_id = await self.store.execute_hook(token, data, self.clock.now())
        self._publish(run_id, "hook")
        return run_id

    async def cancel(self, run_id: str) -> None:
        """End the run (and its unfinished children) `cancelled` now.

        Status reads `cancelled` as soon as this returns. A run that had started owes its
        cleanup: a worker of its workflow replays it, raises WorkflowCancelled where it
        stopped and records what its `try/finally` code does, within `cancel_grace`.
        """
        ids = await self.store.cancel(run_id, self.clock.now(), self.config.cancel_grace)
        if self._executor is not None:
            for rid in ids:
                self._executor.cancel_local(rid)
        for rid in ids:
            self._notify_finished(rid, None)
            self._publish(rid, "finished")

    async def fork(
        self, run_id: str, at: str | None = None, version: str | None = None
    ) -> RunHandle:
        """A new run whose history is `run_id`'s up to, not including, the first event of
        step `at` (default: the step that failed the run), on `version` (default the
        original's; a given version must be registered here). Steps recorded before
        `at` are not run again; children that completed keep their results, others are
        started afresh. The fork's `RunInfo.forked_from` names the original.

        RunNotFound, WorkflowNotFound or ValidationError (bad `at`): nothing written.
        """
        from durable.surgery import fork

        return RunHandle(self, await fork(self, run_id, at, version))

    async def sweep(self) -> int:
        """One pass: fire due schedules, timers and expired leases, and run every runnable
        run to its next suspension (each at most once). Returns how many runs advanced."""
        if self._scheduler is not None:
            await self._scheduler.tick()
        else:
            from durable.schedules import Scheduler

            await Scheduler(self).tick()
        return await self.executor.run_pass()

    async def _record(self, run_id: str) -> RunRecord:
        rec = None if _bad_id(run_id) else await self.store.get_run(run_id)
        if rec is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return rec

    async def get_run(self, run_id: str) -> RunInfo:
        """Status, input, output, error, what it waits on and its full history."""
        # The run and its history in one read: one pool acquire, one consistent snapshot.
        found = None if _bad_id(run_id) else await self.store.get_run_and_events(run_id)
        if found is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        rec, events = found
        history = [
            Event(e.seq, e.kind, e.name, codec.decode(e.payload), e.created_at, e.pos)
            for e in events
        ]
        info = run_info(rec, history)
        if rec.status == RunStatus.PENDING and (rec.queue is not None or rec.ready_at):
            now = self.clock.now()
            stats = None
            if rec.queue is not None:
                queues = await self.store.queue_stats(now, rec.queue)
                stats = queues[0] if queues else None
            info = msgspec.structs.replace(info, pending=wait_reasons(rec, stats, now))
        return msgspec.structs.replace(info, traceback=traceback_of(history))

    async def list_runs(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 100,
        *,
        tags: Mapping[str, str] | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[RunInfo]:
        """Runs newest first, without history.

        `tags` keeps runs carrying all those tags; `before` = (created_at, run_id) of the
        last run of the previous page gives the next page (keyset: stays correct while
        new runs arrive).
        """
        tag_map = None if tags is None else check_tags(tags)
        if status is not None and status not in RunStatus.__members__.values():
            raise ValidationError(
                f"invalid status {status!r}: expected one of {[s.value for s in RunStatus]}"
            )
        if not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"invalid limit {limit!r}: must be an int >= 1")
        records = await self.store.list_runs(
            workflow=workflow, status=status, limit=limit, tags=tag_map, before=before
        )
        return [run_info(r, []) for r in records]

    async def get_child_runs(self, run_id: str) -> list[RunInfo]:
        await self._record(run_id)
        records = await self.store.list_runs(
            workflow=None, status=None, limit=10_000, parent_run_id=run_id
        )
        return [run_info(r, []) for r in records]

    async def get_parent_run(self, run_id: str) -> RunInfo | None:
        rec = await self._record(run_id)
        if rec.parent_run_id is None:
            return None
        parent = await self.store.get_run(rec.parent_run_id)
        return None if parent is None else run_info(parent, [])

    async def get_events(self, run_id: str) -> list[Event]:
        """The run's custom events, in the order they were recorded: those its code
        emitted with `ctx.emit_event` and those emitted from outside (`emit_event`).

        `seq` numbers the run's custom events from 1; `kind` and `name` are the type.
        """
        await self._record(run_id)
        inside = [
            (e.created_at, e.payload, e.name, e.pos)
            for e in await self.store.load_events(run_id)
            if e.kind == EventKind.EVENT_EMITTED
        ]
        outside: list[tuple[datetime | None, bytes | None, str, int]] = [
            (e.created_at, e.payload, e.type, OUTSIDE_POS)
            for e in await self.store.load_custom_events(run_id)
        ]
        # Stable sort: events with equal times keep their own source's order.
        merged = sorted(inside + outside, key=lambda e: e[0] or datetime.min.replace(tzinfo=UTC))
        return [
            Event(i, name, name, codec.decode(payload), at, pos)
            for i, (at, payload, name, pos) in enumerate(merged, 1)
        ]

    async def purge_runs(self, older_than: Any, *, batch: int = 10_000) -> int:
        """Delete finished runs (with their history) that ended more than `older_than` ago.

        Retention for tables that grow with every run; deletes in batches of `batch` so a
        large purge never holds long locks. Returns how many runs were deleted.
        """
        cutoff = self.clock.now() - timedelta(seconds=parse_duration(older_than))
        total = await self.store.purge_partitions(cutoff)  # whole partitions first
        while True:
            n = await self.store.purge(cutoff, batch)
            total += n
            if n < batch:
                return total
