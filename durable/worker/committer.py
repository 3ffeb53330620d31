"""Group commit: one appender per process turns many runs' writes into one transaction.

While one batch is being committed the next one fills up, so under load a single commit
carries hundreds of events and steps per second exceed the database's commits per second.
Each submitter resumes only once the batch holding its rows is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from durable.clock import Clock
from durable.core.events import Event
from durable.store.base import Batch, BatchResult, EventRow, Extend, Finish, Store, Suspend

log = logging.getLogger("durable.worker.committer")


class Item:
    __slots__ = ("events", "extends", "fence", "finish", "future", "run_id", "suspend")

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


class GroupCommitter:
    """Coalesces submitted writes into batches of at most `max_batch` items."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        lease_s: float,
        max_batch: int = 1000,
        pipeline: int = 1,
    ) -> None:
        self._store = store
        self._clock = clock
        self._lease_s = lease_s
        self._max_batch = max_batch
        self._pipeline = pipeline
        self._queue: list[Item] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        self.items = 0

    def start(self) -> None:
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
        """Queue writes; return (accepted, closed, woken) once they are durable (or refused)."""
        result = await self._enqueue(run_id, fence, events, finish, suspend, ())
        return (
            run_id not in result.rejected,
            run_id in result.closed,
            run_id in result.woken,
        )

    async def heartbeat(self, extends: Sequence[Extend]) -> set[str]:
        """Renew leases; return the runs whose lease could not be renewed."""
        result = await self._enqueue("", 0, (), None, None, extends)
        return {e.run_id for e in extends if e.run_id in result.rejected}

    async def _enqueue(
        self,
        run_id: str,
        fence: int,
        events: Sequence[Event],
        finish: Finish | None,
        suspend: Suspend | None,
        extends: Sequence[Extend],
    ) -> BatchResult:
        if self._closed:
            raise RuntimeError("runtime is shutting down")
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._queue.append(Item(run_id, fence, events, finish, suspend, extends, future))
        self._wake.set()
        return await future

    async def _loop(self) -> None:
        # Up to `pipeline` batches in flight on separate connections: while one waits
        # for its fsync the next is already being written. Order within a run is safe:
        # a run submits its terminal write only after its earlier writes came back.
        inflight: set[asyncio.Task[None]] = set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if len(inflight) >= self._pipeline:
                    _, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                items = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                inflight.add(asyncio.create_task(self._commit(items)))
            if self._closed:
                if inflight:
                    await asyncio.wait(inflight)
                return

    async def _commit(self, items: list[Item]) -> None:
        batch = Batch(now=self._clock.now(), lease_s=self._lease_s)
        for item in items:
            for ev in item.events:
                batch.events.append(EventRow(item.run_id, item.fence, ev))
            if item.finish is not None:
                batch.finishes.append(item.finish)
            if item.suspend is not None:
                batch.suspends.append(item.suspend)
            batch.extends.extend(item.extends)
        result: BatchResult | None = None
        error: BaseException | None = None
        try:
            result = await self._store.commit(batch)
        except Exception as exc:
            error = exc
            log.warning("group commit of %d items failed: %s", len(items), exc)
        self.batches += 1
        self.items += len(items)
        for item in items:
            if item.future.done():
                continue
            if result is None:
                item.future.set_exception(error or RuntimeError("commit failed"))
            else:
                item.future.set_result(result)
