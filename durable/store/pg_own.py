"""A connection of its own for one sequential caller of PostgresStore.

The group commit and the claim loop each issue one statement at a time, many times a
second. On a connection of their own they skip the pool's acquire and release, never
queue behind other pool users (result() reads, triggers), and keep their plans warm:
PL/pgSQL caches the plans of a function's statements per connection, so a claim that
rotated over the pool's connections planned `durable_claim_queue` afresh on each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg


class OwnConnection:
    """Opened on first use; one statement at a time on it, a concurrent one (a committer
    pipeline, a sweep beside the claim loop) borrows from the pool. A connection that
    failed is dropped and the next statement opens a new one."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        pool: Callable[[], asyncpg.Pool],
    ) -> None:
        self._open = connect
        self._pool = pool
        self.conn: asyncpg.Connection | None = None
        self._busy = False

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        if self._busy:
            rows: list[asyncpg.Record] = await self._pool().fetch(query, *args)
            return rows
        self._busy = True
        try:
            conn = self.conn
            if conn is None or conn.is_closed():
                conn = self.conn = await self._open()
            try:
                rows = await conn.fetch(query, *args)
            except asyncpg.PostgresError:
                # The server refused the statement: the connection is fine, unless the
                # error was its end (a terminated backend reports one too).
                if conn.is_closed():
                    self.conn = None
                raise
            except BaseException:
                self.conn = None
                conn.terminate()
                raise
            return rows
        finally:
            self._busy = False

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()
