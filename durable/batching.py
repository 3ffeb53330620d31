"""Coalescing of concurrent calls into one batched call (used for `trigger`).

While one batch is in flight the next one fills, so N concurrent callers cost about one
round trip and one commit per batch instead of N.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Feeds queued items to `fn` in batches; each caller gets its own item's result."""

    def __init__(self, fn: Callable[[Sequence[T]], Awaitable[Sequence[R]]], max_batch: int = 500):
        self._fn = fn
        self._max = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max]
                del self._queue[: self._max]
                try:
                    results = await self._fn([item for item, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running = False
