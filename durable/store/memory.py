"""In-process store: the Store protocol on plain dicts, with PostgresStore's semantics.

`Runtime("memory://")` runs the whole engine on it in one process (data is gone when
the process ends); `Runtime(store=MemoryStore())` lets several runtimes of one process
share one, as several workers share one database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from durable.core.events import RUN_POS, Event, EventKind
from durable.core.vocabulary import (
    NOTICE_WAKE,
    RunStatus,
    child_key,
    hook_key,
    notice_cancelled,
    notice_done,
    signal_key,
)
from durable.errors import FenceLost, RunClosed, RunNotFound
from durable.store.base import (
    TERMINAL,
    Batch,
    BatchResult,
    ChildOutcome,
    ClaimedRun,
    Created,
    CustomEvent,
    HookRecord,
    NewRun,
    NoticeCallback,
    RunRecord,
    Store,
)
from durable.store.memory_diagnostics import MemoryDiagnostics
from durable.store.memory_lease import take
from durable.store.memory_queues import MemoryQueues
from durable.store.memory_schedules import MemorySchedules
from durable.store.memory_upgrades import MemoryUpgrades

log = logging.getLogger("durable.store.memory")

_WAITING = (RunStatus.PENDING, RunStatus.SUSPENDED)


@dataclass
class _Run:
    id: str
    workflow: str
    version: str
    status: str
    input: bytes | None
    parent_run_id: str | None
    idempotency_key: str | None
    ready_at: datetime | None
    deadline: datetime | None
    created_at: datetime
    updated_at: datetime
    output: bytes | None = None
    error: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    fence: int = 0
    wakeups: int = 0
    waiting_on: list[str] = field(default_factory=list)
    pending: bytes | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    order: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    queue: str | None = None
    queue_key: str | None = None
    priority: int = 0
    debounce_key: str | None = None
    continued_as: str | None = None
    continued_from: str | None = None
    forked_from: str | None = None
    cleanup_until: datetime | None = None

    def record(self) -> RunRecord:
        return RunRecord(
            run_id=self.id,
            workflow=self.workflow,
            version=self.version,
            status=self.status,
            input=self.input,
            output=self.output,
            error=self.error,
            parent_run_id=self.parent_run_id,
            pending=self.pending,
            created_at=self.created_at,
            updated_at=self.updated_at,
            ready_at=self.ready_at,
            tags=dict(self.tags),
            started_at=self.started_at,
            finished_at=self.finished_at,
            queue=self.queue,
            queue_key=self.queue_key,
            priority=self.priority,
            continued_as=self.continued_as,
            continued_from=self.continued_from,
            forked_from=self.forked_from,
        )


@dataclass
class _Message:
    id: int
    run_id: str
    kind: str
    name: str
    payload: bytes | None
    created_at: datetime


@dataclass
class _Hook:
    token: str
    run_id: str
    name: str
    created_at: datetime
    used_at: datetime | None = None
    metadata: bytes | None = None
    as_signal: bool = False


class MemoryListener:
    """The `Listener` of MemoryStore: never loses a notice, so it is always active."""

    def __init__(self, store: MemoryStore, on_notice: NoticeCallback) -> None:
        self._store = store
        self._on_notice = on_notice
        self._closed = False

    @property
    def active(self) -> bool:
        return not self._closed

    def deliver(self, payload: str) -> None:
        if not self._closed:
            self._on_notice(payload)

    async def close(self) -> None:
        self._closed = True
        self._store.remove_listener(self.deliver)


class MemoryStore(MemorySchedules, MemoryQueues, MemoryDiagnostics, MemoryUpgrades):
    """A store held in this process: for unit tests and quick starts, lost on exit.

    Every method runs to completion without awaiting, so on one event loop each call is
    atomic, like one PostgreSQL transaction. Checks come before writes, so a call that
    raises has changed nothing. Listeners get the notices PostgresStore would NOTIFY
    (`durable.core.vocabulary`), once per distinct payload per call, after the write,
    synchronously (callbacks must only set flags or schedule work).
    """

    channel = "memory"

    def __init__(self) -> None:
        MemorySchedules.__init__(self)
        MemoryQueues.__init__(self)
        self._runs: dict[str, _Run] = {}
        # Runs not yet ended: what claims scan (ended runs pile up; live ones do not).
        self._live: dict[str, _Run] = {}
        # (workflow name, idempotency key) -> run id: keys are scoped per workflow,
        # as by PostgreSQL's unique index (migration 0013).
        self._by_key: dict[tuple[str, str], str] = {}
        self._children: dict[str, list[str]] = {}
        self._events: dict[str, dict[int, Event]] = {}
        self._inbox: list[_Message] = []
        self._hooks: dict[str, _Hook] = {}
        self._custom: dict[str, list[CustomEvent]] = {}
        self._next_custom = 0
        self._listeners: list[NoticeCallback] = []
        self._next_order = 0
        self._next_message = 0

    # -- lifecycle and notifications ------------------------------------------------------

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close; the data stays until the store is dropped."""

    async def migrate(self) -> None:
        """Nothing to migrate."""

    def add_listener(self, callback: NoticeCallback) -> None:
        """Call `callback(payload)` for every notification from now on."""
        self._listeners.append(callback)

    def remove_listener(self, callback: NoticeCallback) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    async def listen(
        self, on_notice: NoticeCallback, on_reconnect: Callable[[], None] | None = None
    ) -> MemoryListener:
        """Deliver every notice from now on; there is no connection to lose."""
        listener = MemoryListener(self, on_notice)
        self.add_listener(listener.deliver)
        return listener

    def _notify(self, payloads: Iterable[str]) -> None:
        # PostgreSQL delivers each distinct payload of a transaction once, after commit.
        for payload in dict.fromkeys(payloads):
            for callback in list(self._listeners):
                try:
                    callback(payload)
                except Exception:
                    log.exception("memory store listener failed on %r", payload)

    # -- helpers -------------------------------------------------------------------------

    def _insert_run(
        self,
        run: NewRun,
        now: datetime,
        *,
        parent_run_id: str | None,
        idempotency_key: str | None,
    ) -> None:
        deadline = now + timedelta(seconds=run.deadline_s) if run.deadline_s is not None else None
        self._next_order += 1
        self._runs[run.run_id] = self._live[run.run_id] = _Run(
            id=run.run_id,
            workflow=run.workflow,
            version=run.version,
            status=RunStatus.PENDING,
            input=run.input,
            parent_run_id=parent_run_id,
            idempotency_key=idempotency_key,
            ready_at=run.ready_at or now,
            deadline=deadline,
            created_at=now,
            updated_at=now,
            order=self._next_order,
            tags=dict(run.tags or {}),
            queue=run.queue,
            queue_key=run.queue_key,
            priority=run.priority,
            debounce_key=run.debounce_key,
        )
        if idempotency_key is not None:
            self._by_key[run.workflow, idempotency_key] = run.run_id
        if parent_run_id is not None:
            self._children.setdefault(parent_run_id, []).append(run.run_id)

    def _check_new_events(self, rows: Sequence[tuple[str, Event]]) -> None:
        """Raise (before anything is written) if an event would reuse a (run, seq) key."""
        seen: set[tuple[str, int]] = set()
        for run_id, event in rows:
            key = (run_id, event.seq)
            if key in seen or event.seq in self._events.get(run_id, {}):
                raise ValueError(f"run {run_id!r} already has an event with seq {event.seq}")
            seen.add(key)

    def _append(self, run_id: str, event: Event, now: datetime) -> None:
        if event.created_at is None:
            event = Event(event.seq, event.pos, event.kind, event.name, event.payload, now)
        self._events.setdefault(run_id, {})[event.seq] = event

    def _owned(self, run_id: str, fence: int) -> _Run:
        run = self._runs.get(run_id)
        if run is None or run.fence != fence or run.status != RunStatus.RUNNING:
            raise FenceLost(f"run {run_id!r} is no longer held by this worker")
        return run

    def _open_run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        if run.status in TERMINAL:
            raise RunClosed(f"run {run_id!r} is already {run.status}")
        return run

    def _wake_parents(self, children: Sequence[_Run], now: datetime, notes: list[str]) -> None:
        """The memory twin of SQL `durable_wake_parents` (migration 0004), used by both
        commit and cancel: each ended child bumps its unfinished parent's `wakeups`; a
        parent suspended on the child's key becomes ready now."""
        pairs = [(c.parent_run_id, c.id) for c in children if c.parent_run_id]
        if not pairs:
            return
        for parent_id, child_id in pairs:
            parent = self._runs.get(parent_id)
            if parent is None or parent.status in TERMINAL:
                continue
            parent.wakeups += 1
            if parent.status in _WAITING and child_key(child_id) in parent.waiting_on:
                parent.ready_at = now
        notes.append(NOTICE_WAKE)

    def _deliver(
        self, run: _Run, kind: str, name: str, key: str, payload: bytes, now: datetime
    ) -> None:
        self._next_message += 1
        self._inbox.append(_Message(self._next_message, run.id, kind, name, payload, now))
        # As in PostgresStore: `wakeups` moves even while the run is held, so its worker
        # notices the delivery when it suspends; ready_at moves only for the awaited key.
        run.wakeups += 1
        if run.status in _WAITING and key in run.waiting_on:
            run.ready_at = now

    @staticmethod
    def _matches(run: _Run, keys: set[tuple[str, str]]) -> bool:
        return (run.workflow, run.version) in keys

    # -- runs ------------------------------------------------------------------------------

    async def create_run(self, run: NewRun, now: datetime) -> tuple[str, bool]:
        created = (await self.create_runs([run], now))[0]
        return created.run_id, created.created

    async def create_runs(self, runs: Sequence[NewRun], now: datetime) -> list[Created]:
        out: list[Created] = []
        notes: list[str] = []
        for run in runs:
            if run.run_id in self._runs:
                out.append(Created(run.run_id, False))
                continue
            key = run.idempotency_key
            if key is not None and (run.workflow, key) in self._by_key:
                out.append(Created(self._by_key[run.workflow, key], False))
                continue
            self._insert_run(
                run, now, parent_run_id=run.parent_run_id, idempotency_key=run.idempotency_key
            )
            if run.owner is None:
                notes.append(NOTICE_WAKE)
                out.append(Created(run.run_id, True))
                continue
            # Local dispatch: inserted already leased to its creator (fence 1).
            row = self._runs[run.run_id]
            claimed = take(row, run.owner, now + timedelta(seconds=run.lease_s), now, now)
            out.append(Created(run.run_id, True, claimed))
        self._notify(notes)
        return out

    async def get_run(self, run_id: str) -> RunRecord | None:
        run = self._runs.get(run_id)
        return None if run is None else run.record()

    async def load_events(self, run_id: str) -> list[Event]:
        events = self._events.get(run_id, {})
        return [events[seq] for seq in sorted(events)]

    async def get_run_and_events(self, run_id: str) -> tuple[RunRecord, list[Event]] | None:
        rec = await self.get_run(run_id)
        return None if rec is None else (rec, await self.load_events(run_id))

    async def list_runs(
        self,
        *,
        workflow: str | None,
        status: str | None,
        limit: int,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[RunRecord]:
        wanted = (tags or {}).items()
        found = [
            r
            for r in self._runs.values()
            if (workflow is None or r.workflow == workflow)
            and (status is None or r.status == status)
            and (parent_run_id is None or r.parent_run_id == parent_run_id)
            and wanted <= r.tags.items()
            and (before is None or (r.created_at, r.id) < before)
        ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [r.record() for r in found[: max(limit, 0)]]

    # -- executing -------------------------------------------------------------------------

    async def claim(
        self,
        *,
        owner: str,
        keys: Sequence[tuple[str, str]],
        limit: int,
        now: datetime,
        lease_s: float,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedRun]:
        if limit <= 0 or not keys:
            return []
        wanted = {(w, v) for w, v in keys}
        skip = set(exclude)
        candidates = [
            r
            for r in self._live.values()
            if r.id not in skip
            and r.queue is None  # queued runs start only through claim_queue
            and self._matches(r, wanted)
            and (
                (r.status in _WAITING and r.ready_at is not None and r.ready_at <= now)
                or (
                    r.status == RunStatus.RUNNING
                    and r.lease_until is not None
                    and r.lease_until < now
                )
            )
        ]
        # ORDER BY ready_at (NULLs last), then creation order for a stable tie-break.
        candidates.sort(key=lambda r: (r.ready_at is None, r.ready_at or now, r.order))
        lease_until = now + timedelta(seconds=lease_s)
        claimed: list[ClaimedRun] = []
        for run in candidates[:limit]:
            taken_from = run.lease_owner if run.status == RunStatus.RUNNING else None
            claimed.append(take(run, owner, lease_until, now, now, taken_from))
        return claimed

    async def commit(self, batch: Batch) -> BatchResult:
        fences: dict[str, int] = {}
        for row in batch.events:
            fences[row.run_id] = row.fence
        for fin in batch.finishes:
            fences[fin.run_id] = fin.fence
        for sus in batch.suspends:
            fences[sus.run_id] = sus.fence
        for ext in batch.extends:
            fences.setdefault(ext.run_id, ext.fence)
        rejected: set[str] = set()
        closed: set[str] = set()
        woken: set[str] = set()
        for run_id, fence in fences.items():
            current = self._runs.get(run_id)
            if current is None or current.fence != fence or current.status != RunStatus.RUNNING:
                rejected.add(run_id)
                if current is not None and current.status in TERMINAL:
                    closed.add(run_id)
        new_events = [(r.run_id, r.event) for r in batch.events if r.run_id not in rejected]
        finishes = [f for f in batch.finishes if f.run_id not in rejected]
        new_events += [(f.run_id, f.event) for f in finishes if f.event is not None]
        self._check_new_events(new_events)

        now = batch.now
        notes: list[str] = []
        for run_id, event in new_events:
            self._append(run_id, event, now)
        finished: list[_Run] = []
        for fin in finishes:
            run = self._runs[fin.run_id]
            self._live.pop(run.id, None)
            run.status = fin.status
            run.output = fin.output
            run.error = fin.error
            run.finished_at = now
            run.updated_at = now
            run.lease_owner = None
            run.lease_until = None
            run.ready_at = None
            run.waiting_on = []
            run.pending = None
            finished.append(run)
        if finished:
            self._wake_parents(finished, now, notes)
            notes.append(notice_done(f.run_id for f in finishes))
        for sus in batch.suspends:
            if sus.run_id in rejected:
                continue
            run = self._runs[sus.run_id]
            # A delivery or child completion that raced with this suspension moved
            # `wakeups`; a count other than the one seen at claim time wakes the run now.
            woke = run.wakeups != sus.seen_wakeups
            run.status = RunStatus.SUSPENDED
            run.lease_owner = None
            run.lease_until = None
            run.ready_at = now if woke else sus.ready_at
            run.waiting_on = list(sus.waiting_on)
            run.pending = sus.pending
            run.updated_at = now
            if woke:
                woken.add(run.id)
        lease_until = now + timedelta(seconds=batch.lease_s)
        for ext in batch.extends:
            if ext.run_id not in rejected:
                self._runs[ext.run_id].lease_until = lease_until
        self._notify(notes)
        return BatchResult(rejected=rejected, woken=woken, closed=closed)

    async def release(self, owner: str, run_ids: Sequence[str], now: datetime) -> None:
        for run_id in dict.fromkeys(run_ids):
            run = self._runs.get(run_id)
            if run is None or run.lease_owner != owner or run.status != RunStatus.RUNNING:
                continue
            run.lease_owner = None
            run.lease_until = None
            run.ready_at = now
            run.updated_at = now
            run.status = RunStatus.SUSPENDED if self._events.get(run_id) else RunStatus.PENDING

    async def take_message(
        self,
        run_id: str,
        fence: int,
        kind: str,
        name: str,
        make_event: Callable[[bytes | None], Event],
        now: datetime,
    ) -> tuple[bool, bytes | None]:
        self._owned(run_id, fence)
        message = next(
            (m for m in self._inbox if m.run_id == run_id and m.kind == kind and m.name == name),
            None,
        )
        if message is None:
            return False, None
        event = make_event(message.payload)
        self._check_new_events([(run_id, event)])
        self._inbox.remove(message)
        self._append(run_id, event, now)
        return True, message.payload

    async def start_child(
        self, run_id: str, fence: int, event: Event, child: NewRun, now: datetime
    ) -> str:
        self._owned(run_id, fence)
        self._check_new_events([(run_id, event)])
        if child.run_id not in self._runs:
            self._insert_run(child, now, parent_run_id=run_id, idempotency_key=None)
        self._append(run_id, event, now)
        self._notify([NOTICE_WAKE])
        return child.run_id

    async def child_outcome(self, run_id: str) -> ChildOutcome | None:
        run = self._runs.get(run_id)
        if run is None:
            return None
        # Follow continue-as-new to the chain's newest run, as PostgresStore does.
        while run.continued_as is not None and run.continued_as in self._runs:
            run = self._runs[run.continued_as]
        followed = None if run.id == run_id else run.id
        return ChildOutcome(status=run.status, output=run.output, error=run.error, run_id=followed)

    async def create_hook(
        self,
        run_id: str,
        fence: int,
        event: Event,
        token: str,
        name: str,
        now: datetime,
        metadata: bytes | None = None,
    ) -> None:
        self._owned(run_id, fence)
        if token in self._hooks:
            raise ValueError("a hook with that token already exists")
        self._check_new_events([(run_id, event)])
        self._hooks[token] = _Hook(
            token=token, run_id=run_id, name=name, created_at=now, metadata=metadata
        )
        self._append(run_id, event, now)

    # -- outside input ---------------------------------------------------------------------

    async def signal(self, run_id: str, name: str, payload: bytes, now: datetime) -> None:
        run = self._open_run(run_id)
        self._deliver(run, "signal", name, signal_key(name), payload, now)
        self._notify([NOTICE_WAKE])

    async def execute_hook(self, token: str, payload: bytes, now: datetime) -> str:
        hook = self._hooks.get(token)
        if hook is None:
            raise RunNotFound("no hook with that token")
        if hook.used_at is not None:
            raise RunClosed(f"the hook of run {hook.run_id!r} was already used")
        run = self._open_run(hook.run_id)
        hook.used_at = now
        if hook.as_signal:  # created from outside: delivered as the signal `name`
            self._deliver(run, "signal", hook.name, signal_key(hook.name), payload, now)
        else:
            self._deliver(run, "hook", token, hook_key(token), payload, now)
        self._notify([NOTICE_WAKE])
        return run.id

    async def cancel(self, run_id: str, now: datetime, cleanup_s: float | None = None) -> list[str]:
        root = self._open_run(run_id)
        # Walk the whole tree (through finished runs too), as the recursive CTE does.
        tree: list[_Run] = []
        seen: set[str] = set()
        todo = [run_id]
        while todo:
            current = todo.pop(0)
            if current in seen or current not in self._runs:
                continue
            seen.add(current)
            tree.append(self._runs[current])
            todo.extend(self._children.get(current, ()))
        cancelled = [r for r in tree if r.status not in TERMINAL]
        for run in cancelled:
            self._live.pop(run.id, None)
            run.status = RunStatus.CANCELLED
            run.error = "cancelled"
            run.finished_at = now
            run.updated_at = now
            run.lease_owner = None
            run.lease_until = None
            run.ready_at = None
            run.waiting_on = []
            run.pending = None
            if cleanup_s is not None and run.started_at is not None:
                run.cleanup_until = now + timedelta(seconds=cleanup_s)
            events = self._events.get(run.id, {})
            seq = max(events, default=0) + 1
            self._append(
                run.id, Event(seq, RUN_POS, EventKind.RUN_CANCELLED.value, "", None, now), now
            )
        notes: list[str] = []
        self._wake_parents([root], now, notes)
        for run in cancelled:
            notes += [notice_cancelled(run.id), notice_done([run.id])]
        self._notify(notes)
        return [r.id for r in cancelled]

    async def purge_partitions(self, before: datetime) -> int:
        """No partitions in memory: `purge` does all the work."""
        return 0

    async def maintain(self) -> None:
        """Nothing to maintain in memory."""

    async def purge(self, before: datetime, limit: int) -> int:
        def open_parent(run: _Run) -> bool:
            parent = self._runs.get(run.parent_run_id) if run.parent_run_id else None
            return parent is not None and parent.status not in TERMINAL

        doomed = sorted(
            (
                r
                for r in self._runs.values()
                if r.status in TERMINAL
                and r.finished_at is not None
                and r.finished_at < before
                and not open_parent(r)
            ),
            key=lambda r: r.finished_at or before,
        )[:limit]
        ids = {r.id for r in doomed}
        for run in doomed:
            del self._runs[run.id]
            self._events.pop(run.id, None)
            if run.idempotency_key is not None:
                self._by_key.pop((run.workflow, run.idempotency_key), None)
            if run.parent_run_id and run.parent_run_id in self._children:
                self._children[run.parent_run_id] = [
                    c for c in self._children[run.parent_run_id] if c != run.id
                ]
        self._inbox = [m for m in self._inbox if m.run_id not in ids]
        self._hooks = {t: h for t, h in self._hooks.items() if h.run_id not in ids}
        for run_id in ids:
            self._custom.pop(run_id, None)
        return len(ids)

    async def next_ready_at(self, keys: Sequence[tuple[str, str]]) -> datetime | None:
        if not keys:
            return None
        wanted = {(w, v) for w, v in keys}
        times: list[datetime] = []
        for run in self._live.values():
            if not self._matches(run, wanted):
                continue
            if run.status in _WAITING and run.ready_at is not None:
                times.append(run.ready_at)
            elif run.status == RunStatus.RUNNING and run.lease_until is not None:
                times.append(run.lease_until)
        return min(times, default=None)

    # -- outside-the-run operations (issue 11) ------------------------------------------------

    async def emit_event(
        self, run_id: str, type: str, payload: bytes | None, now: datetime
    ) -> None:
        self._open_run(run_id)
        self._next_custom += 1
        self._custom.setdefault(run_id, []).append(
            CustomEvent(self._next_custom, type, payload, now)
        )

    async def load_custom_events(self, run_id: str) -> list[CustomEvent]:
        return list(self._custom.get(run_id, ()))

    async def create_outside_hook(
        self, run_id: str, token: str, name: str, metadata: bytes | None, now: datetime
    ) -> None:
        self._open_run(run_id)
        if token in self._hooks:
            raise ValueError("a hook with that token already exists")
        self._hooks[token] = _Hook(token, run_id, name, now, None, metadata, True)

    async def get_hook(self, token: str) -> HookRecord | None:
        h = self._hooks.get(token)
        if h is None:
            return None
        return HookRecord(h.token, h.run_id, h.name, h.metadata, h.created_at, h.used_at)

    async def update_tags(
        self, run_id: str, changes: dict[str, str | None], now: datetime
    ) -> RunRecord:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        for key, value in changes.items():
            if value is None:
                run.tags.pop(key, None)
            else:
                run.tags[key] = value
        run.updated_at = now
        return run.record()


if TYPE_CHECKING:

    def _implements_store(store: MemoryStore) -> Store:
        return store  # mypy checks MemoryStore against the Store protocol here
