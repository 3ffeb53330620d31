"""Coalescing of concurrent calls into one batched call (used for `trigger`), and the
rules every batch follows: bounded by bytes as well as count, and split when it fails.

While one batch is in flight the next one fills, so N concurrent callers cost about one
round trip and one commit per batch instead of N. A batch must never be a way for one
caller's bad item to fail everyone else's: when a batch fails with an error that no
retry can fix, it is split in halves until the item at fault is alone, and only that
item's caller gets the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from durable.errors import PayloadTooLarge

T = TypeVar("T")
R = TypeVar("R")

# SQLSTATE classes PostgreSQL uses for errors caused by the data sent, which resending
# the same data cannot fix: 22 data exception (NUL in text, bad encoding, value out of
# range; asyncpg also raises 22000 when it cannot encode an argument), 54 program limit
# exceeded (index row too large, statement too complex). 08P01 is a protocol violation:
# what PostgreSQL answers to a message over its 1 GB limit ("invalid message length").
_PERMANENT_CLASSES = ("22", "54")
_PERMANENT_STATES = ("08P01",)


def permanent_error(exc: BaseException) -> bool:
    """True for an error that the same write would hit again however often it is retried.

    Duck-typed on `sqlstate` (asyncpg's PostgresError carries it) so that the worker
    layer can classify errors without importing the driver. Client-side encoding
    failures (ValueError, TypeError, OverflowError, RecursionError) count too.
    """
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state:
        return state[:2] in _PERMANENT_CLASSES or state in _PERMANENT_STATES
    return isinstance(exc, ValueError | TypeError | OverflowError | RecursionError)


def storable_text(text: str) -> str:
    """`text` as PostgreSQL can store it: NUL and lone surrogates escaped, not dropped.

    Exception messages are free text the engine records; one NUL byte must not make a
    run's failure unstorable (and so the run unfinishable).
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class Coalescer(Generic[T, R]):
    """Feeds queued items to `fn` in batches; each caller gets its own item's result.

    A batch holds at most `max_batch` items and, when `weigh` is given, at most
    `max_bytes` of their weight (one item alone may not exceed it: its caller gets
    PayloadTooLarge). A batch failing with a `permanent_error` is bisected so only the
    failing items' callers see the error; other errors (a lost connection) reach every
    caller of the batch, since the whole batch may succeed when retried.
    """

    def __init__(
        self,
        fn: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        max_batch: int = 500,
        *,
        weigh: Callable[[T], int] | None = None,
        max_bytes: int = 64 * 1024 * 1024,
        what: str = "item",
    ):
        self._fn = fn
        self._what = what
        self._max = max_batch
        self._weigh = weigh
        self.max_bytes = max_bytes
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        if self._weigh is not None:
            size = self._weigh(item)
            if size > self.max_bytes:
                raise PayloadTooLarge(
                    f"{self._what} is {size} bytes, over the limit of one batch"
                    f" ({self.max_bytes} bytes)"
                )
        self._queue.append((item, future))
        if not self._running:
            # Idle (the queue held nothing): this caller sends its own item at once, on
            # its own task, with no hop to a drain task and back (a single trigger's
            # latency); items queued meanwhile form the next batch, on a drain task.
            self._running = True
            try:
                await self._run(self._take())
            except BaseException:
                if future.done() and not future.cancelled():
                    future.exception()  # raised here: mark it retrieved
                raise
            finally:
                if self._queue:
                    asyncio.get_running_loop().create_task(self._drain())
                else:
                    self._running = False
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next batch: up to `max_batch` items and `max_bytes` of weight (>= 1 item)."""
        n = min(len(self._queue), self._max)
        if self._weigh is not None:
            total = 0
            for i in range(n):
                total += self._weigh(self._queue[i][0])
                if total > self.max_bytes and i > 0:
                    n = i
                    break
        batch = self._queue[:n]
        del self._queue[:n]
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._run(self._take())
        finally:
            self._running = False

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._fn([item for item, _ in batch])
        except BaseException as exc:
            if isinstance(exc, Exception) and len(batch) > 1 and permanent_error(exc):
                mid = len(batch) // 2
                await self._run(batch[:mid])
                await self._run(batch[mid:])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
