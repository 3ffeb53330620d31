"""Server-sent events fed by the runtime's change notices (no database polling).

One subscription to the runtime per app; each connected client gets its own bounded
queue. The notices carry only (run id, what happened): clients fetch what they show,
so a slow client costs memory for ids, never database work per notice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import msgspec

from durable.runtime import Runtime

HEARTBEAT_S = 15.0
QUEUE_SIZE = 1000


class Notice(msgspec.Struct):
    run_id: str
    what: str


class LiveFeed:
    """Fans the runtime's notices out to every open event stream."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._clients: set[asyncio.Queue[Notice | None]] = set()
        self._unsubscribe: Callable[[], None] | None = None

    def _publish(self, run_id: str, what: str) -> None:
        notice = Notice(run_id, what)
        for queue in self._clients:
            try:
                queue.put_nowait(notice)
            except asyncio.QueueFull:
                # Too slow to keep up: drop its backlog and tell it to reload everything.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(Notice("", "resync"))

    def _attach(self) -> asyncio.Queue[Notice | None]:
        if self._unsubscribe is None:
            self._unsubscribe = self._runtime.subscribe(self._publish)
        queue: asyncio.Queue[Notice | None] = asyncio.Queue(QUEUE_SIZE)
        self._clients.add(queue)
        return queue

    def _detach(self, queue: asyncio.Queue[Notice | None]) -> None:
        self._clients.discard(queue)
        if not self._clients and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def close(self) -> None:
        """End every open stream (server shutdown)."""
        for queue in list(self._clients):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def stream(self) -> AsyncIterator[bytes]:
        """`text/event-stream` lines: one `change` event per notice, comments as heartbeats."""
        queue = self._attach()
        try:
            yield b"retry: 2000\n: connected\n\n"
            while True:
                try:
                    async with asyncio.timeout(HEARTBEAT_S):
                        notice = await queue.get()
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                if notice is None:
                    return
                yield b"event: change\ndata: " + msgspec.json.encode(notice) + b"\n\n"
        finally:
            self._detach(queue)
