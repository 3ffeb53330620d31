"""PostgresStore's continue-as-new, fork and cancel-cleanup queries (migration 0007).

A mixin so the store's main module stays readable; every statement is parameterised and
runs on the store's pool (whose `search_path` is the runtime's schema).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import msgspec

from durable.core.events import Event
from durable.core.vocabulary import NOTICE_DONE_PREFIX, NOTICE_WAKE, RunStatus
from durable.store.base import ClaimedRun, Created, NewRun
from durable.store.pg_rows import claimed as _claimed
from durable.store.pg_rows import insert_events
from durable.store.pg_rows import leased as _leased


class PgUpgradeQueries:
    """Lineage and cleanup methods of the Store protocol, on an asyncpg pool."""

    channel: str

    @property
    def pool(self) -> asyncpg.Pool:  # provided by PostgresStore
        raise NotImplementedError

    async def _lock_owned(self, conn: asyncpg.Connection, run_id: str, fence: int) -> None:
        raise NotImplementedError  # PostgresStore's

    async def continue_run(
        self, run_id: str, fence: int, events: Sequence[Event], new: NewRun, now: datetime
    ) -> Created:
        deadline = now + timedelta(seconds=new.deadline_s) if new.deadline_s is not None else None
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_owned(conn, run_id, fence)
            if events:
                await insert_events(conn, [run_id] * len(events), list(events), now)
            parent = await conn.fetchval(
                "UPDATE runs SET status = 'completed', output = NULL, error = NULL,"
                " continued_as = $2, finished_at = $3, updated_at = $3, lease_owner = NULL,"
                " lease_until = NULL, ready_at = NULL, waiting_on = '{}', pending = NULL"
                " WHERE id = $1 RETURNING parent_run_id",
                run_id,
                new.run_id,
                now,
            )
            leased = new.owner is not None
            await conn.execute(
                "INSERT INTO runs (id, workflow, version, status, input, parent_run_id,"
                " ready_at, deadline, created_at, updated_at, continued_from,"
                " lease_owner, lease_until, fence, started_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $7, $9, $10,"
                "  $7::timestamptz + make_interval(secs => $11::float8), $12, $13)",
                new.run_id,
                new.workflow,
                new.version,
                RunStatus.RUNNING if leased else RunStatus.PENDING,
                new.input,
                parent,
                now,
                deadline,
                run_id,
                new.owner,
                new.lease_s if leased else None,
                1 if leased else 0,
                now if leased else None,
            )
            if parent is not None:
                await conn.execute(
                    "SELECT durable_wake_parents($1::text[], $2::text[], $3, $4)",
                    [parent],
                    [run_id],
                    now,
                    self.channel,
                )
            await conn.execute(
                "SELECT pg_notify($1, $2)", self.channel, NOTICE_DONE_PREFIX + run_id
            )
            if not leased:
                await conn.execute("SELECT pg_notify($1, $2)", self.channel, NOTICE_WAKE)
        claim = _leased(msgspec.structs.replace(new, parent_run_id=parent), now, deadline)
        return Created(new.run_id, True, claim)

    async def fork_run(
        self, new: NewRun, events: Sequence[Event], forked_from: str, now: datetime
    ) -> None:
        deadline = now + timedelta(seconds=new.deadline_s) if new.deadline_s is not None else None
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO runs (id, workflow, version, status, input, ready_at, deadline,"
                " created_at, updated_at, started_at, forked_from)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $6, $8, $9)",
                new.run_id,
                new.workflow,
                new.version,
                RunStatus.SUSPENDED if events else RunStatus.PENDING,
                new.input,
                now,
                deadline,
                now if events else None,
                forked_from,
            )
            if events:
                await insert_events(conn, [new.run_id] * len(events), list(events), now)
            await conn.execute("SELECT pg_notify($1, $2)", self.channel, NOTICE_WAKE)

    async def claim_cleanups(
        self,
        *,
        owner: str,
        keys: Sequence[tuple[str, str]],
        limit: int,
        now: datetime,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedRun]:
        if limit <= 0 or not keys:
            return []
        # The lease lasts the whole grace: the cleanup never outlives cleanup_until, and
        # no other worker may start the same cleanup meanwhile (exactly-once cleanup).
        rows = await self.pool.fetch(
            "WITH c AS ("
            " SELECT id FROM runs"
            " WHERE cleanup_until > $1 AND status = 'cancelled'"
            "   AND (lease_until IS NULL OR lease_until < $1)"
            "   AND (workflow, version) IN (SELECT * FROM unnest($2::text[], $3::text[]))"
            "   AND NOT (id = ANY($6::text[]))"
            " ORDER BY cleanup_until LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " UPDATE runs r SET lease_owner = $5, lease_until = r.cleanup_until,"
            "  fence = r.fence + 1, updated_at = $1"
            " FROM c WHERE r.id = c.id"
            " RETURNING r.id, r.workflow, r.version, r.input, r.fence, r.wakeups,"
            "  r.parent_run_id, coalesce(r.started_at, $1) AS started_at,"
            "  r.cleanup_until AS deadline",
            now,
            [k[0] for k in keys],
            [k[1] for k in keys],
            limit,
            owner,
            list(exclude),
        )
        return [_claimed(r, cleanup=True) for r in rows]

    async def append_cleanup(
        self, run_id: str, fence: int, events: Sequence[Event], now: datetime, *, done: bool
    ) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            held = await conn.fetchval(
                "SELECT 1 FROM runs WHERE id = $1 AND fence = $2 AND status = 'cancelled'"
                " AND cleanup_until IS NOT NULL FOR NO KEY UPDATE",
                run_id,
                fence,
            )
            if held is None:
                return False
            if events:
                await insert_events(conn, [run_id] * len(events), list(events), now)
            if done:
                await conn.execute(
                    "UPDATE runs SET cleanup_until = NULL, lease_owner = NULL,"
                    " lease_until = NULL, updated_at = $2 WHERE id = $1",
                    run_id,
                    now,
                )
            return True
