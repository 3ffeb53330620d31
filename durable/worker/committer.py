"""Group commit: one appender per process turns many runs' writes into one transaction.

While one batch is being committed the next one fills up, so under load a single commit
carries hundreds of events and steps per second exceed the database's commits per second.
Each submitter resumes only once the batch holding its rows is durable.

A batch is bounded by bytes as well as by count (PostgreSQL refuses a message over
1 GB, and a huge batch costs memory on both sides). A batch that fails with an error no
retry can fix is split in halves until the run at fault is alone; that run is then
failed with the error recorded, and every other run in the batch commits. See
docs/reliability.md, "What we tried and what held".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Sequence

import msgspec

from durable import codec
from durable.batching import permanent_error, storable_text
from durable.clock import Clock
from durable.core.events import RUN_POS, Event, EventKind
from durable.store.base import Batch, BatchResult, EventRow, Extend, Finish, Store, Suspend

log = logging.getLogger("durable.worker.committer")

MAX_BATCH_BYTES = 64 * 1024 * 1024
"""A batch stops taking items once it holds this many payload bytes (it always takes one)."""

MAX_ITEM_BYTES = 512 * 1024 * 1024
"""One run's writes over this fail the run: PostgreSQL refuses messages over 1 GB."""

_ROW_OVERHEAD = 64
"""Bytes counted per row on top of its payload and text: ids, fences, seqs, timestamps."""

GC_YOUNG_THRESHOLD = 7000
"""The cyclic collector's first threshold a runtime sets when it starts (see
`young_gc_threshold`)."""

_PYTHON_GC_DEFAULTS = (700, 2000)  # the first threshold of CPython 3.11-3.12, and 3.13


def young_gc_threshold() -> None:
    """Raise the cyclic collector's first threshold to GC_YOUNG_THRESHOLD, once per
    process, unless the application chose its own (it is no longer Python's default).

    Every step in flight holds about seven collector-tracked objects while it waits for
    its group commit (its coroutines, the future, the queued item, its events), so with
    hundreds of runs in flight the default threshold (700 net allocations) runs a young
    collection every ~100 steps, and the objects that outlive a few of them (all of a
    commit's waiters) are promoted and traversed again by the older generations. Runs
    leave no reference cycles (docs/operations.md), so nothing is gained by collecting
    that often: scenario 1 spent 4-5 us of its ~27 us of Python per step in the
    collector, 2-3 us less with this setting (docs/benchmarks.md).
    """
    first, *rest = gc.get_threshold()
    if first in _PYTHON_GC_DEFAULTS and gc.isenabled():
        gc.set_threshold(GC_YOUNG_THRESHOLD, *rest)


class SubmitOutcome(msgspec.Struct, frozen=True):
    """What happened to one run's submitted writes.

    `failed` is set when the database could never accept them (see BatchResult.failed):
    the committer has then ended the run `failed` with that error in their place, so the
    execution must write nothing more and report the run finished as failed.
    """

    accepted: bool
    closed: bool
    woken: bool
    failed: str | None = None


class Item:
    __slots__ = ("events", "extends", "fence", "finish", "future", "run_id", "size", "suspend")

    def __init__(
        self,
        run_id: str,
        fence: int,
        events: Sequence[Event],
        finish: Finish | None,
        suspend: Suspend | None,
        extends: Sequence[Extend],
        future: asyncio.Future[BatchResult],
    ) -> None:
        self.run_id = run_id
        self.fence = fence
        self.events = events
        self.finish = finish
        self.suspend = suspend
        self.extends = extends
        self.future = future
        self.size = _size(events, finish, suspend, extends)


def _size(
    events: Sequence[Event],
    finish: Finish | None,
    suspend: Suspend | None,
    extends: Sequence[Extend],
) -> int:
    """Roughly the bytes these writes take in the commit statement (payloads dominate)."""
    n = len(extends) * _ROW_OVERHEAD
    for ev in events:
        n += _ROW_OVERHEAD + len(ev.name) + len(ev.payload or b"")
    if finish is not None:
        n += _ROW_OVERHEAD + len(finish.output or b"") + len(finish.error or "")
        if finish.event is not None:
            n += _ROW_OVERHEAD + len(finish.event.payload or b"")
    if suspend is not None:
        n += _ROW_OVERHEAD + len(suspend.pending) + sum(len(k) for k in suspend.waiting_on)
    return n


class GroupCommitter:
    """Coalesces submitted writes into batches of at most `max_batch` items and
    `max_batch_bytes` bytes; one run's writes over `max_item_bytes` fail that run."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        lease_s: float,
        max_batch: int = 1000,
        pipeline: int = 1,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_item_bytes: int = MAX_ITEM_BYTES,
    ) -> None:
        self._store = store
        self._clock = clock
        self._lease_s = lease_s
        self._max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.max_item_bytes = max_item_bytes
        self._pipeline = pipeline
        self._queue: list[Item] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        young_gc_threshold()
        self._task = asyncio.create_task(self._loop(), name="durable-committer")

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(RuntimeError("runtime is shutting down"))
        self._queue.clear()

    async def submit(
        self,
        run_id: str,
        fence: int,
        *,
        events: Sequence[Event] = (),
        finish: Finish | None = None,
        suspend: Suspend | None = None,
    ) -> tuple[bool, bool, bool]:
        """Queue writes; return (accepted, closed, woken) once they are durable (or refused).

        A run failed in place of its writes (see `submit_outcome`) reads as refused and
        closed: the caller stops writing, and the run is already `failed` in the database.
        """
        out = await self.submit_outcome(
            run_id, fence, events=events, finish=finish, suspend=suspend
        )
        return out.accepted, out.closed, out.woken

    async def submit_outcome(
        self,
        run_id: str,
        fence: int,
        *,
        events: Sequence[Event] = (),
        finish: Finish | None = None,
        suspend: Suspend | None = None,
    ) -> SubmitOutcome:
        """Like `submit`, also telling a run failed in place of its writes, and why."""
        result = await self.enqueue(run_id, fence, events, finish, suspend)
        return SubmitOutcome(
            accepted=run_id not in result.rejected,
            closed=run_id in result.closed,
            woken=run_id in result.woken,
            failed=result.failed.get(run_id),
        )

    async def heartbeat(self, extends: Sequence[Extend]) -> set[str]:
        """Renew leases; return the runs whose lease could not be renewed."""
        result = await self.enqueue("", 0, (), None, None, extends)
        return {e.run_id for e in extends if e.run_id in result.rejected}

    def enqueue(
        self,
        run_id: str,
        fence: int,
        events: Sequence[Event],
        finish: Finish | None = None,
        suspend: Suspend | None = None,
        extends: Sequence[Extend] = (),
    ) -> asyncio.Future[BatchResult]:
        """Queue writes; the returned future resolves with their batch's result once it
        is durable (or with the batch's error).

        A plain function, not a coroutine: a step's write (`RunExecution.append`)
        awaits the future itself, with no coroutine frames between the step and its
        commit. The caller reads its own run in the result (`rejected`, `closed`,
        `woken`, `failed`).
        """
        if self._closed:
            raise RuntimeError("runtime is shutting down")
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        item = Item(run_id, fence, events, finish, suspend, extends, future)
        if extends:
            # A lease renewal goes first: queued behind megabytes of results it could
            # arrive after the lease lapsed, and the run would be claimed twice.
            self._queue.insert(0, item)
        else:
            self._queue.append(item)
        self._wake.set()
        return future

    async def _loop(self) -> None:
        # Up to `pipeline` batches in flight on separate connections: while one waits
        # for its fsync the next is already being written. Order within a run is safe:
        # a run submits its terminal write only after its earlier writes came back.
        # With one (the default) the batch is committed right here: no task and no
        # asyncio.wait per batch, which a run of sequential steps pays at every step.
        inflight: set[asyncio.Task[None]] = set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if self._pipeline == 1:
                    await self._commit_here(self._take())
                    continue
                if len(inflight) >= self._pipeline:
                    _, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                inflight.add(asyncio.create_task(self._commit(self._take())))
            if self._closed:
                if inflight:
                    await asyncio.wait(inflight)
                return

    def _take(self) -> list[Item]:
        """The next batch: up to `max_batch` items and `max_batch_bytes` (at least one)."""
        queue = self._queue
        n = min(len(queue), self._max_batch)
        if queue and queue[0].extends:
            # Lease renewals (queued first) commit on their own, not behind a batch of
            # results that could take longer to write than the lease has left.
            n = next((i for i in range(n) if not queue[i].extends), n)
        total = 0
        for i in range(n):
            total += queue[i].size
            if total > self.max_batch_bytes and i > 0:
                n = i
                break
        items = queue[:n]
        del queue[:n]
        return items

    def _batch(self, items: Sequence[Item]) -> Batch:
        batch = Batch(now=self._clock.now(), lease_s=self._lease_s)
        rows = batch.events
        for item in items:
            run_id = item.run_id
            fence = item.fence
            for ev in item.events:
                rows.append(EventRow(run_id, fence, ev))
            if item.finish is not None:
                finish = item.finish
                if finish.error is not None:
                    # The error is an exception's message: free text the run must be
                    # able to store whatever it holds.
                    error = storable_text(finish.error)
                    if error != finish.error:
                        finish = msgspec.structs.replace(finish, error=error)
                batch.finishes.append(finish)
            if item.suspend is not None:
                batch.suspends.append(item.suspend)
            if item.extends:
                batch.extends.extend(item.extends)
        return batch

    async def _commit_here(self, items: list[Item]) -> None:
        """Commit a batch on the committer's own task; an unexpected error (a bug: the
        store's errors are handled by `_write`) fails the batch, never the loop."""
        try:
            await self._commit(items)
        except Exception as exc:
            log.exception("group commit of %d items failed unexpectedly", len(items))
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)

    async def _commit(self, items: list[Item]) -> None:
        self.batches += 1
        self.items += len(items)
        await self._write(items)

    async def _write(self, items: list[Item]) -> None:
        """Commit `items`; on an error no retry can fix, bisect to the run at fault."""
        too_big = [i for i in items if i.run_id and i.size > self.max_item_bytes]
        if too_big:
            for item in too_big:
                await self._fail_run(
                    item,
                    f"PayloadTooLarge: the run's writes in one commit are {item.size} bytes,"
                    f" over the limit of {self.max_item_bytes} bytes",
                )
            items = [i for i in items if i not in too_big]
            if not items:
                return
        try:
            result = await self._store.commit(self._batch(items))
        except Exception as exc:
            if permanent_error(exc):
                if len(items) > 1:
                    mid = len(items) // 2
                    await self._write(items[:mid])
                    await self._write(items[mid:])
                    return
                if items[0].run_id:
                    log.warning(
                        "run %s: its writes cannot be stored, failing it: %s", items[0].run_id, exc
                    )
                    await self._fail_run(
                        items[0],
                        f"{type(exc).__name__}: the run's writes cannot be stored: {exc}",
                        cause=exc,
                    )
                    return
            log.warning("group commit of %d items failed: %s", len(items), exc)
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item in items:
            if not item.future.done():
                item.future.set_result(result)

    async def _fail_run(self, item: Item, error: str, cause: BaseException | None = None) -> None:
        """End the run `failed` with `error`, in place of writes that can never be stored.

        Its RUN_FAILED event takes the first seq of the refused writes: everything before
        them is durable (a run submits only after its earlier writes came back).
        """
        error = storable_text(error)
        seqs = [e.seq for e in item.events]
        if item.finish is not None and item.finish.event is not None:
            seqs.append(item.finish.event.seq)
        now = self._clock.now()
        event = (
            Event(min(seqs), RUN_POS, EventKind.RUN_FAILED.value, "", codec.encode(error), now)
            if seqs
            else None
        )
        finish = Finish(item.run_id, item.fence, "failed", None, error, event)
        try:
            result = await self._store.commit(
                Batch(now=now, finishes=[finish], lease_s=self._lease_s)
            )
        except Exception as exc:
            log.warning("run %s: could not record its failure: %s", item.run_id, exc)
            if not item.future.done():
                item.future.set_exception(cause or exc)
            return
        failed = {} if item.run_id in result.rejected else {item.run_id: error}
        if not item.future.done():
            item.future.set_result(
                BatchResult(
                    rejected={item.run_id},
                    woken=set(),
                    closed=set(result.closed) | set(failed),
                    failed=failed,
                )
            )
