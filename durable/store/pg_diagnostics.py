"""PostgreSQL side of issue 14: retrying failed runs, leases, worker heartbeats, schema checks.

A mixin of PostgresStore (its own module keeps postgres.py under its size limit). Every
query is parameterised; the workers table comes from migration 0010 (0011: its
clock_skew_s column). `database_time` is the clock every runtime follows (issue 16).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import msgspec

from durable.core.vocabulary import NOTICE_WAKE, RunStatus
from durable.errors import RunNotFailed, RunNotFound, SchemaNotFound
from durable.store import pg_archive
from durable.store.base import LeaseInfo, WorkerInfo

# A worker row expired this long ago is deleted by the next heartbeat of any worker.
_FORGET_AFTER = timedelta(hours=1)


class PgDiagnostics:
    """Methods PostgresStore gains for issue 14; they need its pool, schema and channel."""

    schema: str
    channel: str

    @property
    def pool(self) -> asyncpg.Pool:  # pragma: no cover - PostgresStore overrides it
        raise NotImplementedError

    async def check_schema(self) -> None:
        found = await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2)",
            self.schema,
            "runs",
        )
        if not found:
            raise SchemaNotFound(
                f"schema {self.schema!r} does not exist in this database or holds no durable "
                "tables: check --schema / DURABLE_SCHEMA (or the Runtime's schema=); "
                "`durable migrate` creates it"
            )

    async def reopen_run(
        self, run_id: str, *, drop_seqs: Sequence[int], last_seq: int, now: datetime
    ) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            # An archived run is retried from `runs`; no archiver moves it meanwhile.
            await pg_archive.hold_off(conn, self.schema)
            await pg_archive.restore(conn, run_id)
            status = await conn.fetchval("SELECT status FROM runs WHERE id = $1 FOR UPDATE", run_id)
            if status is None:
                raise RunNotFound(f"no run with id {run_id!r}")
            if status != RunStatus.FAILED:
                raise RunNotFailed(
                    f"run {run_id!r} is {status}: only a failed run (or one parked by "
                    "NonDeterminismError) can be retried"
                )
            # The history the caller computed `drop_seqs` from must be the one stored:
            # a concurrent retry (or anything else) changed it otherwise.
            stored_last = await conn.fetchval(
                "SELECT coalesce(max(seq), 0) FROM events WHERE run_id = $1", run_id
            )
            if stored_last != last_seq:
                raise RunNotFailed(f"run {run_id!r} changed while it was being retried")
            await conn.execute(
                "DELETE FROM events WHERE run_id = $1 AND seq = ANY($2::int[])",
                run_id,
                list(drop_seqs),
            )
            new_status: str = await conn.fetchval(
                "UPDATE runs SET status = CASE WHEN EXISTS"
                "  (SELECT 1 FROM events e WHERE e.run_id = $1) THEN 'suspended' ELSE 'pending' END,"
                " ready_at = $2, updated_at = $2, error = NULL, output = NULL,"
                " finished_at = NULL, lease_owner = NULL, lease_until = NULL,"
                " waiting_on = '{}', pending = NULL, fence = fence + 1"
                " WHERE id = $1 RETURNING status",
                run_id,
                now,
            )
            await conn.execute("SELECT pg_notify($1, $2)", self.channel, NOTICE_WAKE)
            return new_status

    async def get_lease(self, run_id: str) -> LeaseInfo | None:
        row = await self.pool.fetchrow(
            "SELECT lease_owner, lease_until, fence FROM runs WHERE id = $1", run_id
        )
        if row is None:
            return None
        return LeaseInfo(row["lease_owner"], row["lease_until"], row["fence"])

    async def database_time(self) -> datetime | None:
        # clock_timestamp(), not now(): now() is the start of the transaction.
        when: datetime = await self.pool.fetchval("SELECT clock_timestamp()")
        return when

    async def record_worker(self, worker: WorkerInfo, now: datetime) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO workers"
                " (id, host, pid, started_at, last_seen, expires_at, workflows, clock_skew_s)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)"
                " ON CONFLICT (id) DO UPDATE SET last_seen = EXCLUDED.last_seen,"
                "  expires_at = EXCLUDED.expires_at, workflows = EXCLUDED.workflows,"
                "  clock_skew_s = EXCLUDED.clock_skew_s",
                worker.id,
                worker.host,
                worker.pid,
                worker.started_at,
                worker.last_seen,
                worker.expires_at,
                msgspec.json.encode(worker.workflows).decode(),
                worker.clock_skew_s,
            )
            await conn.execute("DELETE FROM workers WHERE expires_at < $1", now - _FORGET_AFTER)

    async def remove_worker(self, worker_id: str) -> None:
        await self.pool.execute("DELETE FROM workers WHERE id = $1", worker_id)

    async def list_workers(self, now: datetime) -> list[WorkerInfo]:
        rows = await self.pool.fetch(
            "SELECT id, host, pid, started_at, last_seen, expires_at, workflows::text AS wf,"
            " clock_skew_s FROM workers WHERE expires_at > $1 ORDER BY id",
            now,
        )
        return [
            WorkerInfo(
                id=r["id"],
                host=r["host"],
                pid=r["pid"],
                started_at=r["started_at"],
                last_seen=r["last_seen"],
                expires_at=r["expires_at"],
                workflows=[(w, v) for w, v in msgspec.json.decode(r["wf"])],
                clock_skew_s=r["clock_skew_s"],
            )
            for r in rows
        ]
