"""PostgreSQL side of the outside-the-run operations: custom events, outside hooks, tags.

A mixin of PostgresStore, kept in its own module so the store's core (claims, the group
commit) stays readable. Every query is parameterised.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from durable.errors import RunClosed, RunNotFound
from durable.store import pg_archive
from durable.store.base import TERMINAL, CustomEvent, HookRecord, RunRecord


class OutsideOps:
    """Methods PostgresStore gains for issue 11; they need only its pool."""

    @property
    def pool(self) -> asyncpg.Pool:  # pragma: no cover - PostgresStore overrides it
        raise NotImplementedError

    async def get_run(self, run_id: str) -> RunRecord | None:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    async def _lock_open(conn: asyncpg.Connection, run_id: str) -> None:
        """Lock the run's row; RunNotFound / RunClosed before anything is written."""
        status = await conn.fetchval(
            "SELECT status FROM runs WHERE id = $1 FOR NO KEY UPDATE", run_id
        )
        if status is None:
            status = await pg_archive.archived_status(conn, run_id)
        if status is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        if status in TERMINAL:
            raise RunClosed(f"run {run_id!r} is already {status}")

    async def emit_event(
        self, run_id: str, type: str, payload: bytes | None, now: datetime
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_open(conn, run_id)
            await conn.execute(
                "INSERT INTO run_events (run_id, type, payload, created_at)"
                " VALUES ($1, $2, $3, $4)",
                run_id,
                type,
                payload,
                now,
            )

    async def load_custom_events(self, run_id: str) -> list[CustomEvent]:
        rows = await self.pool.fetch(
            "SELECT id, type, payload, created_at FROM run_events WHERE run_id = $1 ORDER BY id",
            run_id,
        )
        return [CustomEvent(*r) for r in rows]

    async def create_outside_hook(
        self, run_id: str, token: str, name: str, metadata: bytes | None, now: datetime
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_open(conn, run_id)
            await conn.execute(
                "INSERT INTO hooks (token, run_id, name, created_at, metadata, as_signal)"
                " VALUES ($1, $2, $3, $4, $5, true)",
                token,
                run_id,
                name,
                now,
                metadata,
            )

    async def get_hook(self, token: str) -> HookRecord | None:
        row = await self.pool.fetchrow(
            "SELECT token, run_id, name, metadata, created_at, used_at FROM hooks WHERE token = $1",
            token,
        )
        return None if row is None else HookRecord(*row)

    async def update_tags(
        self, run_id: str, changes: dict[str, str | None], now: datetime
    ) -> RunRecord:
        """Merge `changes` into the run's tags (a None value removes the key)."""
        keep = {k: v for k, v in changes.items() if v is not None}
        drop = [k for k, v in changes.items() if v is None]
        added = msgspec.json.encode(keep).decode()
        for table in ("runs", "runs_archive"):  # runs first (pg_archive: why)
            status = await self.pool.fetchval(
                f"UPDATE {table} SET tags = (tags - $3::text[]) || $2::jsonb, updated_at = $4"  # noqa: S608
                " WHERE id = $1 RETURNING status",
                run_id,
                added,
                drop,
                now,
            )
            if status is not None:
                break
        if status is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        rec = await self.get_run(run_id)
        assert rec is not None
        return rec
