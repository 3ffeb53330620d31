"""The `Runtime`: the public entry point that triggers, inspects, signals and executes runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import msgspec

from durable import codec
from durable.batching import Coalescer
from durable.clock import SYSTEM_CLOCK, Clock
from durable.config import RuntimeConfig
from durable.core.events import EventKind
from durable.core.vocabulary import TERMINAL, Notice, parse_notice
from durable.core.vocabulary import RunStatus as RunStatus
from durable.durations import parse_duration
from durable.errors import (
    PayloadTooLarge,
    RunNotFound,
    ValidationError,
    WorkflowCancelled,
    WorkflowFailed,
)
from durable.ids import new_run_id
from durable.store import Created, Finish, Listener, NewRun, RunRecord, Store, store_for
from durable.worker.executor import Executor
from durable.workflow import Registry, WorkflowDef, check_name

log = logging.getLogger("durable.runtime")

OUTSIDE_POS = -2
"""`Event.pos` of a custom event emitted from outside the run (no ctx call owns it)."""


class Event(msgspec.Struct, frozen=True):
    """One entry of a run's history, payload decoded. Kinds: see docs/concepts.md."""

    seq: int
    kind: str
    name: str
    payload: Any
    created_at: datetime | None
    pos: int = -1


class RunInfo(msgspec.Struct, frozen=True):
    """What `get_run` and `list_runs` report about a run."""

    run_id: str
    workflow: str
    version: str
    status: RunStatus
    input: Any
    output: Any
    error: str | None
    pending: list[dict[str, Any]]
    history: list[Event]
    parent_run_id: str | None
    created_at: datetime
    updated_at: datetime
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    continued_as: str | None = None


class HookInfo(msgspec.Struct, frozen=True):
    """What `get_hook` reports: `used_at` is None until the hook is executed."""

    token: str
    run_id: str
    name: str
    metadata: Any
    created_at: datetime
    used_at: datetime | None


MAX_TAG_KEY = 128
MAX_TAG_VALUE = 1024


def check_tags(tags: Any, *, removals: bool = False) -> dict[str, Any]:
    """Tags are str -> str (None too when `removals`: it deletes the key). ValidationError."""
    if not isinstance(tags, Mapping):
        raise ValidationError(f"invalid tags {tags!r}: expected a dict of str to str")
    for key, value in tags.items():
        check_name(key, "tag key")
        if len(key) > MAX_TAG_KEY:
            raise ValidationError(f"invalid tag key {key[:40]!r}...: over {MAX_TAG_KEY} chars")
        if value is None and removals:
            continue
        if not isinstance(value, str) or "\x00" in value or len(value) > MAX_TAG_VALUE:
            raise ValidationError(
                f"invalid value {value!r} for tag {key!r}: must be a string without NUL"
                f" of at most {MAX_TAG_VALUE} chars"
            )
    return dict(tags)


def _info(rec: RunRecord, history: list[Event]) -> RunInfo:
    return RunInfo(
        run_id=rec.run_id,
        workflow=rec.workflow,
        version=rec.version,
        status=RunStatus(rec.status),
        input=codec.decode(rec.input),
        output=codec.decode(rec.output),
        error=rec.error,
        pending=(
            list(codec.decode(rec.pending) or []) if rec.status == RunStatus.SUSPENDED else []
        ),
        history=history,
        parent_run_id=rec.parent_run_id,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        tags=dict(rec.tags),
        started_at=rec.started_at,
        finished_at=rec.finished_at,
    )


class RunHandle:
    """A run started by `trigger`: ask its status or wait for its result."""

    def __init__(self, runtime: Runtime, run_id: str, created: bool = True) -> None:
        self._rt = runtime
        self.run_id = run_id
        self.created = created

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id!r}>"

    async def status(self) -> RunStatus:
        rec = await self._rt._record(self.run_id)
        return RunStatus(rec.status)

    async def result(self, timeout: Any = None) -> Any:
        """Wait for the run to finish and return its output.

        Raises WorkflowFailed or WorkflowCancelled for those ends, and the built-in
        TimeoutError when `timeout` passes first (the run is left alone).
        """
        seconds = None if timeout is None else parse_duration(timeout)
        async with asyncio.timeout(seconds):
            status, output, error = await self._rt._wait_finished(self.run_id)
        if status == RunStatus.COMPLETED:
            return codec.decode(output)
        if status == RunStatus.CANCELLED:
            raise WorkflowCancelled(f"run {self.run_id!r} was cancelled", run_id=self.run_id)
        raise WorkflowFailed(
            f"run {self.run_id!r} failed: {error}", run_id=self.run_id, error=error
        )


class Runtime:
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
        concurrency: int = 100,
        lease: Any = "30s",
        schema: str = "durable",
        timezone: str = "UTC",
        poll_interval: Any = "1s",
        sticky_cache: int = 10_000,
        max_payload_bytes: int | None = 16 * 1024 * 1024,
        shutdown_grace: Any = "10s",
        pool_size: int = 10,
        listen: bool = True,
        local_dispatch: bool = True,
        clock: Clock | None = None,
        store: Store | None = None,
        context_provider: Callable[[Any], Any] | None = None,
    ) -> None:
        config = RuntimeConfig.build(
            worker=worker,
            concurrency=concurrency,
            lease=lease,
            schema=schema,
            timezone=timezone,
            poll_interval=poll_interval,
            sticky_cache=sticky_cache,
            max_payload_bytes=max_payload_bytes,
            shutdown_grace=shutdown_grace,
            pool_size=pool_size,
            listen=listen,
            local_dispatch=local_dispatch,
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
        self.clock = clock or SYSTEM_CLOCK
        if context_provider is not None and not callable(context_provider):
            raise TypeError(
                f"invalid context_provider {context_provider!r}: must be a callable (run_info)"
            )
        self.context_provider = context_provider
        self._given_store = store
        self._store: Store | None = None
        self._executor: Executor | None = None
        self._listener: Listener | None = None
        self._waiters: dict[str, list[asyncio.Event]] = {}
        self._outcomes: dict[str, Finish] = {}
        self._scheduler: Any = None
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
        return store

    async def __aenter__(self) -> Runtime:
        store = await self._open_store()
        self._store = store
        try:
            await store.migrate()
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
            for run_id in run_ids:
                self._notify_finished(run_id, None)
                self._publish(run_id, "finished")
        elif kind is Notice.CANCELLED:
            if self._executor is not None:
                self._executor.cancel_local(run_ids[0])
        else:
            self._publish("", "wake")
            if self._executor is not None and self.worker:
                self._executor.poke()

    def _on_reconnect(self) -> None:
        """Notices were lost while the listener was down: re-check everything once."""
        if self._executor is not None:
            self._executor.poke()
        for events in self._waiters.values():
            for ev in events:
                ev.set()

    def _notify_finished(self, run_id: str, outcome: Finish | None) -> None:
        """Wake this process's result() waiters; a local finish hands them its outcome."""
        waiters = self._waiters.get(run_id)
        if not waiters:
            return
        if outcome is not None:
            self._outcomes[run_id] = outcome
        for ev in waiters:
            ev.set()

    async def _wait_finished(self, run_id: str) -> tuple[str, bytes | None, str | None]:
        """Wait for the run's end: (status, output, error).

        Woken by this process's finish notices (local runs hand over their outcome, so no
        query is needed) and by NOTIFY; polling is the fallback, rare while LISTEN is up.
        """
        ev = asyncio.Event()
        self._waiters.setdefault(run_id, []).append(ev)
        try:
            listening = self._listener is not None and self._listener.active
            # With LISTEN up every finish sends a notice (and a reconnect wakes all
            # waiters), so polling only guards against the unforeseen.
            delay = max(self.poll_interval * 5, 1.0) if listening else 0.02
            cap = max(self.poll_interval * 50, 10.0) if listening else max(self.poll_interval, 0.02)
            while True:
                outcome = self._outcomes.get(run_id)
                if outcome is not None:
                    return outcome.status, outcome.output, outcome.error
                rec = await self._record(run_id)
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
    ) -> RunHandle:
        """Start a run; returns once it is durably recorded.

        The same `run_id` or `idempotency_key` returns the existing run and starts nothing.
        `parent_run_id` records lineage only (the parent does not wait); `tags` label the
        run for `list_runs(tags=...)`.
        """
        defn = self._workflow(workflow, version)
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
        local = self.worker and self.local_dispatch and executor.reserve(defn)
        new = NewRun(
            run_id=run_id or new_run_id(),
            workflow=defn.name,
            version=defn.version,
            input=data,
            created_at=self.clock.now(),
            idempotency_key=idempotency_key,
            deadline_s=defn.execution_timeout,
            owner=executor.owner if local else None,
            lease_s=self.lease_s,
            parent_run_id=parent_run_id,
            tags=tag_map,
        )
        try:
            result = await self._creator.submit(new)
        except BaseException:
            if local:
                executor.unreserve()
            raise
        if local:
            if result.claimed is not None:
                executor.start_reserved(result.claimed)
            else:
                executor.unreserve()
        if result.created:
            self._publish(result.run_id, "created")
        return RunHandle(self, result.run_id, result.created)

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
        """End the run (and its unfinished children) `cancelled` now."""
        ids = await self.store.cancel(run_id, self.clock.now())
        if self._executor is not None:
            for rid in ids:
                self._executor.cancel_local(rid)
        for rid in ids:
            self._notify_finished(rid, None)
            self._publish(rid, "finished")

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
        if not isinstance(run_id, str) or "\x00" in run_id:
            raise RunNotFound(f"no run with id {run_id!r}")
        rec = await self.store.get_run(run_id)
        if rec is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return rec

    async def get_run(self, run_id: str) -> RunInfo:
        """Status, input, output, error, what it waits on and its full history."""
        rec = await self._record(run_id)
        events = await self.store.load_events(run_id)
        history = [
            Event(e.seq, e.kind, e.name, codec.decode(e.payload), e.created_at, e.pos)
            for e in events
        ]
        return _info(rec, history)

    async def export_run(self, run_id: str) -> dict[str, Any]:
        """The run and its full history with the stored payload bytes, as `durable runs
        export` writes it (format in durable.testing.replay), for offline replay checks."""
        from durable.testing.replay import export_document

        rec = await self._record(run_id)
        return export_document(rec, await self.store.load_events(run_id))

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
        return [_info(r, []) for r in records]

    async def get_child_runs(self, run_id: str) -> list[RunInfo]:
        await self._record(run_id)
        records = await self.store.list_runs(
            workflow=None, status=None, limit=10_000, parent_run_id=run_id
        )
        return [_info(r, []) for r in records]

    async def get_parent_run(self, run_id: str) -> RunInfo | None:
        rec = await self._record(run_id)
        if rec.parent_run_id is None:
            return None
        parent = await self.store.get_run(rec.parent_run_id)
        return None if parent is None else _info(parent, [])

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

    # -- schedules (implemented in durable.schedules) ----------------------------------

    async def list_schedules(self) -> list[Any]:
        """Every schedule known to the database, with its next fire time and paused flag."""
        from durable.schedules import ScheduleAdmin

        return await ScheduleAdmin(self).list()

    async def pause_schedule(self, name: str) -> None:
        """Stop a schedule from firing until resumed (survives restarts)."""
        from durable.schedules import ScheduleAdmin

        await ScheduleAdmin(self).pause(name)

    async def resume_schedule(self, name: str) -> None:
        """Let a paused schedule fire again, from its next tick on."""
        from durable.schedules import ScheduleAdmin

        await ScheduleAdmin(self).resume(name)

    # -- outside-the-run operations (issue 11) -----------------------------------------

    async def emit_event(self, run_id: str, type: str, payload: Any = None) -> None:
        """Record a custom event for an unfinished run from outside; `get_events` lists it.

        RunNotFound / RunClosed; ValidationError for a bad type or an oversize payload.
        """
        check_name(type, "event type")
        data = None if payload is None else codec.encode(payload, what=f"event {type!r}")
        if data is not None:
            self._check_size(data, f"payload of event {type!r}")
        await self.store.emit_event(self._id(run_id), type, data, self.clock.now())
        self._publish(run_id, "event")

    async def create_hook(self, run_id: str, name: str, metadata: Any = None) -> str:
        """Create a hook for an unfinished run from outside and return its token.

        Executing it delivers its payload to the run as the signal `name` (the workflow
        waits with `ctx.wait_for_signal(name)`).
        """
        import secrets

        check_name(name, "hook name")
        meta = None if metadata is None else codec.encode(metadata, what="hook metadata")
        if meta is not None:
            self._check_size(meta, f"metadata of hook {name!r}")
        token = secrets.token_urlsafe(24)  # 192 random bits, URL-safe
        await self.store.create_outside_hook(self._id(run_id), token, name, meta, self.clock.now())
        self._publish(run_id, "hook")
        return token

    async def get_hook(self, token: str) -> HookInfo:
        """The hook behind `token` (RunNotFound when there is none)."""
        rec = None
        if isinstance(token, str) and token and "\x00" not in token:
            rec = await self.store.get_hook(token)
        if rec is None:
            raise RunNotFound("no hook with that token")
        meta = codec.decode(rec.metadata)
        return HookInfo(rec.token, rec.run_id, rec.name, meta, rec.created_at, rec.used_at)

    async def update_run(self, run_id: str, *, tags: Mapping[str, str | None]) -> RunInfo:
        """Merge `tags` into the run's tags (a None value removes the key); finished runs
        may be re-labelled too. Returns the run without history."""
        changes = check_tags(tags, removals=True)
        rec = await self.store.update_tags(self._id(run_id), changes, self.clock.now())
        self._publish(run_id, "tags")
        return _info(rec, [])

    @staticmethod
    def _id(run_id: Any) -> str:
        if not isinstance(run_id, str) or "\x00" in run_id:
            raise RunNotFound(f"no run with id {run_id!r}")
        return run_id

    def subscribe(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Call `callback(run_id, what)` on every change this process sees; returns the
        unsubscribe function. `what`: created, running, suspended, finished, signal,
        hook, event, tags, abandoned, or wake (run_id "": another process's NOTIFY).

        Callbacks run on the event loop and must not block. This is the single seam the
        HTTP server's live updates use.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _publish(self, run_id: str, what: str) -> None:
        for callback in list(self._subscribers):
            try:
                callback(run_id, what)
            except Exception:
                log.exception("runtime subscriber failed on %s %s", run_id, what)
