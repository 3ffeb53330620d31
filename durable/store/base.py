"""The store protocol every backend implements, and the records that cross it.

`Store` is the engine's whole persistence boundary: the runtime, the executor and the
scheduler reach the database only through it (notifications included), so any object
implementing it runs the engine -- `Runtime(store=obj)`. `durable.testing.conformance`
is the executable form of the invariants written on each method below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from durable.core.events import Event
from durable.core.vocabulary import TERMINAL as TERMINAL


class NewRun(msgspec.Struct, frozen=True):
    """A run to create; `ready_at` is when it may first be claimed."""

    run_id: str
    workflow: str
    version: str
    input: bytes
    created_at: datetime
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    deadline_s: float | None = None
    owner: str | None = None
    """Insert the run already leased to this worker (local dispatch)."""
    lease_s: float = 30.0
    tags: dict[str, str] | None = None
    ready_at: datetime | None = None
    """Earliest start (a `delay` or debounce window); None: now."""
    queue: str | None = None
    """The flow-control queue whose limits gate the run's start (claimed only by
    `claim_queue`, never by `claim`)."""
    queue_key: str | None = None
    priority: int = 0
    debounce_key: str | None = None
    """With `create_debounced`: collapse into the not-yet-started run of this key."""
    continued_from: str | None = None
    """The run this one continues (continue-as-new); set by `continue_run`."""


class RunRecord(msgspec.Struct, frozen=True):
    """A run row as stored."""

    run_id: str
    workflow: str
    version: str
    status: str
    input: bytes | None
    output: bytes | None
    error: str | None
    parent_run_id: str | None
    pending: bytes | None
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queue: str | None = None
    queue_key: str | None = None
    priority: int = 0
    continued_as: str | None = None
    continued_from: str | None = None
    forked_from: str | None = None


class ClaimedRun(msgspec.Struct, frozen=True):
    """A run this worker now holds: its fence guards every write it makes."""

    run_id: str
    workflow: str
    version: str
    input: bytes | None
    fence: int
    wakeups: int
    parent_run_id: str | None
    started_at: datetime
    deadline: datetime | None
    fresh: bool = False
    """True when no worker ever held the run before: it has no history to load."""
    taken_from: str | None = None
    """The previous holder, when this claim took over a run whose lease had expired."""
    cleanup: bool = False
    """A cancelled run claimed to run its cleanup (`claim_cleanups`); `deadline` is the
    end of its cancel grace."""


class EventRow(msgspec.Struct, frozen=True):
    run_id: str
    fence: int
    event: Event


class Finish(msgspec.Struct, frozen=True):
    """A run's terminal write: status, output/error and its last event, in one commit."""

    run_id: str
    fence: int
    status: str
    output: bytes | None
    error: str | None
    event: Event | None


class Suspend(msgspec.Struct, frozen=True):
    """Release a run until `ready_at` (None: until something wakes it)."""

    run_id: str
    fence: int
    ready_at: datetime | None
    waiting_on: list[str]
    pending: bytes
    seen_wakeups: int


class Extend(msgspec.Struct, frozen=True):
    run_id: str
    fence: int


class Batch(msgspec.Struct):
    """Everything one group commit writes in a single transaction."""

    now: datetime
    events: list[EventRow] = msgspec.field(default_factory=list)
    finishes: list[Finish] = msgspec.field(default_factory=list)
    suspends: list[Suspend] = msgspec.field(default_factory=list)
    extends: list[Extend] = msgspec.field(default_factory=list)
    lease_s: float = 30.0


class BatchResult(msgspec.Struct):
    """Which runs' writes were refused (fence lost or run closed) and which suspends woke.

    `failed` maps a run whose writes the database can never accept (a data error, a
    program limit, too large for one commit) to the error the committer recorded when it
    failed that run in their place; such a run is also in `rejected` and `closed`.
    """

    rejected: set[str]
    woken: set[str]
    closed: set[str]
    failed: dict[str, str] = msgspec.field(default_factory=dict)


class ChildOutcome(msgspec.Struct, frozen=True):
    status: str
    output: bytes | None
    error: str | None
    run_id: str | None = None
    """When the asked run continued as new: the chain's newest run, this outcome's
    (None when the outcome is the asked run's own)."""


class Created(msgspec.Struct, frozen=True):
    """What `create_runs` reports for one requested run.

    `run_id` is the run that now stands for the request (an existing run wins by id, or
    by idempotency key within the same workflow name); `created` says whether this call
    inserted it; `claimed` is the lease of a run inserted already held by
    `NewRun.owner` (local dispatch), ready to execute without a claim query, else None.
    """

    run_id: str
    created: bool
    claimed: ClaimedRun | None = None


class ScheduleInfo(msgspec.Struct, frozen=True):
    """What `Runtime.list_schedules` reports about one schedule."""

    name: str
    workflow: str
    expression: str
    timezone: str
    next_fire_at: datetime
    last_fired_at: datetime | None
    paused: bool
    active: bool


class ScheduleRow(ScheduleInfo, frozen=True):
    """One stored schedule: the public fields plus the tick-claim state."""

    pending_fire_at: datetime | None
    claimed_at: datetime | None
    updated_at: datetime

    def info(self) -> ScheduleInfo:
        return ScheduleInfo(
            name=self.name,
            workflow=self.workflow,
            expression=self.expression,
            timezone=self.timezone,
            next_fire_at=self.next_fire_at,
            last_fired_at=self.last_fired_at,
            paused=self.paused,
            active=self.active,
        )


class QueueSpec(msgspec.Struct, frozen=True):
    """A flow-control queue's limits as the claim path receives them (None: no limit)."""

    name: str
    concurrency: int | None = None
    per_key_concurrency: int | None = None
    rate_limit: int | None = None
    rate_period_s: float | None = None


class KeyStats(msgspec.Struct, frozen=True):
    """Active (started, not ended) and pending (not started) runs of one queue key."""

    key: str
    active: int
    pending: int


class QueueStats(msgspec.Struct, frozen=True):
    """What `Runtime.queue_stats` and `durable queues list` report about one queue.

    `window_starts` counts run starts in the last `rate_period_s` (0 without a rate
    limit); `keys` lists the keys with active or pending runs, by key.
    """

    name: str
    concurrency: int | None
    per_key_concurrency: int | None
    rate_limit: int | None
    rate_period_s: float | None
    active: int
    pending: int
    window_starts: int
    keys: list[KeyStats]


NoticeCallback = Callable[[str], None]
"""Receives one notice payload (see `durable.core.vocabulary`); must not block."""


class Listener(Protocol):
    """A subscription to a store's notices, returned by `Store.listen`."""

    @property
    def active(self) -> bool:
        """True while notices are being delivered (False while reconnecting).

        Waiters poll rarely while it is True and often while it is False.
        """
        ...

    async def close(self) -> None:
        """Stop delivering notices; idempotent."""
        ...


class HookRecord(msgspec.Struct, frozen=True):
    """A hook as stored; `metadata` is encoded (codec) or None."""

    token: str
    run_id: str
    name: str
    metadata: bytes | None
    created_at: datetime
    used_at: datetime | None


class CustomEvent(msgspec.Struct, frozen=True):
    """A custom event emitted into a run from outside (Runtime.emit_event)."""

    id: int
    type: str
    payload: bytes | None
    created_at: datetime


class WorkerInfo(msgspec.Struct, frozen=True):
    """A live worker as recorded by its heartbeat: what it serves, until when.

    `workflows` lists the (workflow, version) pairs it executes; the row counts as live
    while `expires_at` is in the future (the heartbeat pushes it forward).
    """

    id: str
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime
    expires_at: datetime
    workflows: list[tuple[str, str]]
    clock_skew_s: float | None = None
    """How far the worker's host clock is ahead of the database's (negative: behind),
    as last measured; None when not measured (a store without a clock of its own)."""


class LeaseInfo(msgspec.Struct, frozen=True):
    """Who holds a run and until when (owner and until are None when nobody does)."""

    owner: str | None
    until: datetime | None
    fence: int


class Store(Protocol):
    """Everything the engine needs from persistence.

    Conventions every implementation keeps (checked by `durable.testing.conformance`):

    - Each method is atomic: it happens entirely or not at all, and a method that
      raises has written nothing.
    - Times come from the caller (`now`), never from the store's own clock, so a
      virtual clock drives the whole engine. A store shared by several hosts exposes
      its clock through `database_time` instead: the runtime's clock follows it, so
      the `now` every caller passes is the store's time, whatever the host's says.
    - A *fence* is a counter bumped on every claim; writes made with an old fence are
      refused, so a worker that lost its lease changes nothing.
    - Wake keys and notice payloads are those of `durable.core.vocabulary`. A delivery
      (signal, hook, child end) bumps the run's `wakeups` and, if the run is suspended
      on that key, makes it ready at `now` -- in the same atomic step.
    - After a write that makes something runnable, listeners receive `NOTICE_WAKE`;
      after runs end, `notice_done(ids)`; after a cancel, `notice_cancelled(id)` too.
      Notices are sent after the write is durable; a listener may miss some (e.g.
      while reconnecting), so the engine also polls.
    """

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect. Raises ConnectionError (naming the target, no secrets) on failure."""
        ...

    async def close(self) -> None:
        """Release connections; the data stays. Idempotent."""
        ...

    async def migrate(self) -> None:
        """Create or upgrade the storage; idempotent and safe with concurrent callers."""
        ...

    async def listen(
        self, on_notice: NoticeCallback, on_reconnect: Callable[[], None] | None = None
    ) -> Listener:
        """Deliver every notice sent from now on (by any process) to `on_notice`.

        A store that can lose its subscription (a dropped connection) re-establishes it
        itself and then calls `on_reconnect`, since notices sent meanwhile are lost.
        """
        ...

    async def database_time(self) -> datetime | None:
        """The store's own clock now (aware UTC), read fresh on each call; None for a
        store whose callers share one clock (the memory store: one process).

        Leases, claims and timers compare times written by different processes, so they
        must all come from one clock: a runtime samples this one and passes its time as
        `now` (`durable.clock.DatabaseClock`). Never called on the hot path."""
        ...

    # -- runs ------------------------------------------------------------------------------

    async def create_run(self, run: NewRun, now: datetime) -> tuple[str, bool]:
        """Insert one run (see `create_runs`); returns (run id standing for it, created)."""
        ...

    async def create_runs(self, runs: Sequence[NewRun], now: datetime) -> list[Created]:
        """Insert runs, one result per request in order.

        An existing run with the same id, or else an existing run of the same workflow
        name with the same idempotency key (keys are scoped per workflow; ids are not),
        wins and nothing is written for that request. A new run is `pending` and ready
        at `now`, with `deadline = now + deadline_s`; with `owner` set it is inserted `running`,
        leased to `owner` for `lease_s`, fence 1, and returned as `Created.claimed`
        (no notice is sent for it). Other new runs send `NOTICE_WAKE`. Requests of one
        call resolve as if made one after another: a request repeating an earlier one's
        id (or else its key) gets `created=False` and no claim.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None for any unknown id."""
        ...

    async def load_events(self, run_id: str) -> list[Event]:
        """The run's history in `seq` order (empty for an unknown id)."""
        ...

    async def get_run_and_events(self, run_id: str) -> tuple[RunRecord, list[Event]] | None:
        """`get_run` and `load_events` in one read (one snapshot; for Postgres one pool
        acquire and one round trip, which the API pays on every fetch), or None."""
        ...

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
        """Runs matching every given filter, newest first (`created_at`, then id, desc).

        `tags`: runs carrying every given tag; `before`: keyset pagination, only runs
        strictly older than this `(created_at, run_id)`."""
        ...

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
        """Take up to `limit` runnable runs of the (workflow, version) pairs `keys`.

        Runnable: `pending`/`suspended` with `ready_at <= now`, or `running` with a lease
        that expired before `now`. Earliest `ready_at` first; ids in `exclude` are
        skipped. Each claimed run becomes `running`, leased to `owner` until
        `now + lease_s`, its fence bumped; `started_at` is set on the first claim only
        (`fresh` tells that no worker held it before). Concurrent claimers never get the
        same run.
        """
        ...

    async def commit(self, batch: Batch) -> BatchResult:
        """Write one group commit atomically (the hot path: keep it one round trip).

        A run's rows are written only if its fence matches and it is still `running`;
        others are reported in `rejected` (and in `closed` when the run has ended)
        without failing the rest. Finishes end runs (clearing lease, ready_at,
        waiting_on, pending), wake their parents (`child_key`) and send
        `notice_done`. A suspend whose run's `wakeups` moved since `seen_wakeups` makes
        it ready at `now` and reports it in `woken`. Extends renew leases to
        `now + lease_s`. An event reusing a (run, seq) raises and writes nothing.
        """
        ...

    async def release(self, owner: str, run_ids: Sequence[str], now: datetime) -> None:
        """Give back runs `owner` holds: ready at `now`, `suspended` if they have history
        else `pending`. Runs held by someone else are left alone."""
        ...

    async def take_message(
        self,
        run_id: str,
        fence: int,
        kind: str,
        name: str,
        make_event: Callable[[bytes | None], Event],
        now: datetime,
    ) -> tuple[bool, bytes | None]:
        """Consume the oldest inbox message (kind, name) of a held run and append
        `make_event(payload)` in the same step: (True, payload), or (False, None) when
        there is none. FenceLost if the run is not held with `fence`."""
        ...

    async def start_child(
        self, run_id: str, fence: int, event: Event, child: NewRun, now: datetime
    ) -> str:
        """Append `event` to the held run and insert `child` (parent = `run_id`) unless
        a run with its id exists; sends `NOTICE_WAKE`. FenceLost as `take_message`."""
        ...

    async def child_outcome(self, run_id: str) -> ChildOutcome | None:
        """The run's status, output and error (None for an unknown id), following
        `continued_as` to the newest run of its continue-as-new chain (`run_id` says
        which run that is)."""
        ...

    async def continue_run(
        self, run_id: str, fence: int, events: Sequence[Event], new: NewRun, now: datetime
    ) -> Created:
        """Continue-as-new, atomically: append `events` to the held run, end it
        `completed` (output None, `continued_as = new.run_id`), insert `new` (its parent
        is the old run's parent, `continued_from` the old run), wake the old run's parent
        as a finish does and send `notice_done` for the old run. With `new.owner` the new
        run is inserted leased (as `create_runs`) and returned in `Created.claimed`.
        FenceLost if the run is not held with `fence` (nothing written)."""
        ...

    async def fork_run(
        self, new: NewRun, events: Sequence[Event], forked_from: str, now: datetime
    ) -> None:
        """Insert `new` with `forked_from` set and `events` as its history, atomically.
        With events it starts `suspended` (already started, so workers load its
        history), ready at `now`; without, `pending`. Sends `NOTICE_WAKE`."""
        ...

    async def claim_cleanups(
        self,
        *,
        owner: str,
        keys: Sequence[tuple[str, str]],
        limit: int,
        now: datetime,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedRun]:
        """Lease cancelled runs of `keys` whose cleanup is owed (`cleanup_until > now`)
        and that nobody holds, until their `cleanup_until`; fence bumped, status stays
        `cancelled`. Returned with `cleanup=True` and `deadline = cleanup_until`."""
        ...

    async def append_cleanup(
        self, run_id: str, fence: int, events: Sequence[Event], now: datetime, *, done: bool
    ) -> bool:
        """Append a cancelled run's cleanup events if it is still held with `fence` and
        its cleanup is owed; with `done`, also end the cleanup (clear `cleanup_until`
        and the lease). False (nothing written) otherwise."""
        ...

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
        """Record the hook `token` (with its encoded `metadata`) of the held run and
        append `event`, atomically."""
        ...

    # -- outside input ---------------------------------------------------------------------

    async def signal(self, run_id: str, name: str, payload: bytes, now: datetime) -> None:
        """Queue a signal for the run (delivered under `signal_key(name)`).

        RunNotFound for an unknown run, RunClosed for an ended one."""
        ...

    async def execute_hook(self, token: str, payload: bytes, now: datetime) -> str:
        """Use the hook once and deliver the payload (under `hook_key(token)`); returns
        its run id. RunNotFound for an unknown token, RunClosed if used or the run ended."""
        ...

    async def cancel(self, run_id: str, now: datetime, cleanup_s: float | None = None) -> list[str]:
        """End the run and its unfinished descendants `cancelled` (with a `run_cancelled`
        event each); wake the run's parent; send `notice_cancelled` and `notice_done`
        for each. With `cleanup_s`, each of them that had started owes a cleanup until
        `now + cleanup_s` (see `claim_cleanups`); its lease is dropped either way.
        Returns the ids cancelled. RunNotFound / RunClosed as `signal`."""
        ...

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` runs that ended before `before`, with everything they
        own; a run whose parent has not ended is kept. Returns how many were deleted."""
        ...

    async def purge_partitions(self, before: datetime) -> int:
        """Retention by whole storage units: drop those whose every run ended before
        `before` (PostgreSQL: day partitions of the history), deleting those runs.
        Returns how many runs went; a store without such units returns 0 and leaves
        everything to `purge`."""
        ...

    async def maintain(self) -> None:
        """Periodic upkeep a worker calls from its heartbeat (PostgreSQL: create the
        history partitions ahead). Cheap when there is nothing to do; idempotent."""
        ...

    async def next_ready_at(self, keys: Sequence[tuple[str, str]]) -> datetime | None:
        """The earliest time a run of `keys` becomes claimable (a `ready_at` of a
        pending/suspended run, or a lease expiry), or None. Used for time skipping."""
        ...

    # -- flow control (queues) -------------------------------------------------------------

    async def claim_queue(
        self,
        *,
        owner: str,
        queue: QueueSpec,
        keys: Sequence[tuple[str, str]],
        limit: int,
        now: datetime,
        lease_s: float,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedRun]:
        """`claim` for the runs of `queue` (of the pairs `keys`), within its limits.

        A queued run is *active* from its first claim (`started_at`) until it ends. Runs
        already active and runnable (woken, released, or with an expired lease) are
        taken first and change no count. Then runs never started (`pending`,
        `ready_at <= now`) start, lowest `priority` first, FIFO within a priority, keys
        round-robin, while: active runs < `concurrency`, active runs of the run's key <
        `per_key_concurrency`, and starts with `started_at > now - rate_period_s` <
        `rate_limit`. A start is stamped no earlier than any finish of the queue already
        recorded, so recorded [started_at, finished_at) intervals obey the limits.
        Concurrent claimers (any process) never exceed a limit together. Records
        `queue`'s limits for `queue_stats`.
        """
        ...

    async def create_debounced(self, run: NewRun, now: datetime) -> Created:
        """Insert `run` (`debounce_key` set, `ready_at` = end of its window), or collapse
        it into the run of the same workflow and debounce key that has not started:
        that run takes `run`'s input, `ready_at`, key and priority, and its id is
        returned (`created` False)."""
        ...

    async def upsert_queues(self, queues: Sequence[QueueSpec], now: datetime) -> None:
        """Record the limits of `queues` (shown by `queue_stats`); enforcement uses the
        limits each claimer passes to `claim_queue`."""
        ...

    async def queue_stats(self, now: datetime, name: str | None = None) -> list[QueueStats]:
        """Every recorded queue (or just `name`; empty if unknown), by name."""
        ...

    # -- schedules -------------------------------------------------------------------------

    async def list_schedules(self) -> list[ScheduleRow]:
        """Every stored schedule, by name."""
        ...

    async def get_schedule(self, name: str) -> ScheduleRow | None:
        """The schedule `name`, or None."""
        ...

    async def upsert_schedule(
        self,
        *,
        name: str,
        workflow: str,
        expression: str,
        timezone: str,
        next_fire_at: datetime,
        now: datetime,
    ) -> bool:
        """Make the schedule `name` match what code declares, active; True if changed.

        A new schedule starts at `next_fire_at`. An existing one keeps its paused flag
        and next fire time unless its expression or timezone changed or it was
        inactive: then it restarts at `next_fire_at`."""
        ...

    async def deactivate_schedules(
        self, workflows: Sequence[str], keep: Sequence[str], now: datetime
    ) -> list[str]:
        """Mark inactive the active schedules of `workflows` not named in `keep`;
        returns their names, sorted."""
        ...

    async def due_schedules(self, names: Sequence[str], now: datetime) -> list[ScheduleRow]:
        """Active, unpaused schedules among `names` with `next_fire_at <= now`, earliest
        first (then by name)."""
        ...

    async def stale_schedule_claims(
        self, names: Sequence[str], claimed_before: datetime
    ) -> list[ScheduleRow]:
        """Schedules among `names` holding a tick claimed before `claimed_before` and
        never confirmed, by name."""
        ...

    async def claim_schedule_tick(
        self,
        *,
        name: str,
        due_at: datetime,
        expression: str,
        timezone: str,
        fire_at: datetime,
        next_fire_at: datetime,
        now: datetime,
    ) -> bool:
        """Compare-and-set: exactly one of any number of concurrent callers wins.

        Succeeds only while the schedule's `next_fire_at` is still `due_at`, it is
        active, unpaused, holds no unconfirmed claim and has this expression and
        timezone; then sets `next_fire_at`, `last_fired_at = pending_fire_at = fire_at`
        and `claimed_at = now`."""
        ...

    async def confirm_schedule_tick(self, name: str, fire_at: datetime) -> None:
        """Drop the claim of tick `fire_at` (its run exists or was given up on)."""
        ...

    async def reclaim_schedule_tick(
        self, name: str, fire_at: datetime, claimed_before: datetime, now: datetime
    ) -> bool:
        """Compare-and-set: take over a stale claim of `fire_at` (claimed before
        `claimed_before`) by setting `claimed_at = now`; one caller wins."""
        ...

    async def next_schedule_due(self, names: Sequence[str]) -> datetime | None:
        """The earliest `next_fire_at` of the active, unpaused schedules among `names`."""
        ...

    async def pause_schedule(self, name: str, now: datetime) -> bool:
        """Set the paused flag; False if there is no such schedule."""
        ...

    async def resume_schedule(
        self, name: str, *, expression: str, timezone: str, next_fire_at: datetime, now: datetime
    ) -> bool:
        """Compare-and-set: clear the paused flag and restart at `next_fire_at`, only if
        the schedule is paused and still has this expression and timezone (the fire
        time was computed from them). False otherwise."""
        ...

    # -- outside-the-run operations ---------------------------------------------------------

    async def emit_event(
        self, run_id: str, type: str, payload: bytes | None, now: datetime
    ) -> None:
        """Store a custom event for an unfinished run, outside its history (so it never
        races the worker's sequence numbers and replay never sees it).

        RunNotFound for an unknown run, RunClosed for an ended one."""
        ...

    async def load_custom_events(self, run_id: str) -> list[CustomEvent]:
        """The custom events emitted into the run from outside, oldest first."""
        ...

    async def create_outside_hook(
        self, run_id: str, token: str, name: str, metadata: bytes | None, now: datetime
    ) -> None:
        """A hook for the run created from outside; executing it delivers its payload
        as the signal `name`. RunNotFound / RunClosed as `emit_event`."""
        ...

    async def get_hook(self, token: str) -> HookRecord | None:
        """The hook `token` (created inside or outside a run), or None."""
        ...

    async def update_tags(
        self, run_id: str, changes: dict[str, str | None], now: datetime
    ) -> RunRecord:
        """Merge `changes` into the run's tags (a None value removes the key) and
        return the updated run. RunNotFound for an unknown run."""
        ...

    # -- failures and diagnostics (issue 14) -------------------------------------------------

    async def check_schema(self) -> None:
        """Raise SchemaNotFound (naming it) when the storage was never created.

        Read-only callers use it instead of `migrate`, so a mistyped schema is an error,
        not a new empty schema."""
        ...

    async def reopen_run(
        self, run_id: str, *, drop_seqs: Sequence[int], last_seq: int, now: datetime
    ) -> str:
        """Retry a failed run in place: delete the events `drop_seqs` of its history and
        make it runnable at `now` (`suspended` if history remains, else `pending`), its
        error, output and finish time cleared, its fence bumped; its inbox is kept.

        Atomic under the run's lock, and only while the run is `failed` and its history
        still ends at `last_seq` (what the caller computed `drop_seqs` from): else
        RunNotFailed. RunNotFound for an unknown run. Sends `NOTICE_WAKE`; returns the
        new status."""
        ...

    async def get_lease(self, run_id: str) -> LeaseInfo | None:
        """Who holds the run and until when (None for an unknown run)."""
        ...

    async def record_worker(self, worker: WorkerInfo, now: datetime) -> None:
        """Insert or refresh the worker's heartbeat row; rows expired for over an hour
        are deleted on the way."""
        ...

    async def remove_worker(self, worker_id: str) -> None:
        """Delete the worker's row (it stopped cleanly); idempotent."""
        ...

    async def list_workers(self, now: datetime) -> list[WorkerInfo]:
        """The workers whose row has not expired at `now`, by id."""
        ...
