"""LISTEN on a dedicated connection, re-established by itself when it drops.

Pool connections must never hold a LISTEN (they are shared and reset-free), so the
listener has its own connection. While it is down notices are lost: polling covers the
gap, and `on_reconnect` tells the engine to re-check everything once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from durable.outage import Outage
from durable.store.base import NoticeCallback

log = logging.getLogger("durable.store.postgres")

#: How often a lost LISTEN connection is retried (seconds).
RECONNECT_INTERVAL = 1.0


class PgListener:
    """The `Listener` of PostgresStore."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        channel: str,
        on_notice: NoticeCallback,
        on_reconnect: Callable[[], None] | None,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._on_notice = on_notice
        self._on_reconnect = on_reconnect
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Connect and LISTEN now (errors propagate), then watch the connection."""
        await self._listen()
        self._task = asyncio.create_task(self._watch(), name="durable-listener")

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            await conn.add_listener(self._channel, self._deliver)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        self._conn = conn

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            self._on_notice(str(payload))
        except Exception:
            log.exception("notice handler failed on %r", payload)

    async def _watch(self) -> None:
        outage = Outage("listener", log, first=RECONNECT_INTERVAL, maximum=10.0)
        delay = RECONNECT_INTERVAL
        while True:
            await asyncio.sleep(delay)
            if self.active:
                continue
            try:
                await self._listen()
            except Exception as exc:
                delay = outage.failed(exc)
                continue
            delay = RECONNECT_INTERVAL
            outage.recovered()
            if self._on_reconnect is not None:
                self._on_reconnect()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
