"""PostgresStore's cancel: a run and its unfinished descendants end `cancelled` at once.

A mixin so the store's main module stays readable. Cancel and the group commit both lock
several runs' rows, and two transactions that lock the same rows in opposite orders
deadlock. The commit locks the runs it writes (in id order) and then, when some of them
finish, their parents (`durable_wake_parents`): children before parents. Cancel used to
lock the root first and its children after, and lost 3 races in 400 to a child's
finishing commit with `DeadlockDetectedError` (issue 16, item 6). It now locks in the
commit's order -- the deepest generation first, each in id order, the root last -- and
retries the few deadlocks that remain (a commit holding a parent and its child in one
batch locks them in id order, which no single order can match), up to `ATTEMPTS` times.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from durable.core.events import RUN_POS, EventKind
from durable.core.vocabulary import NOTICE_CANCELLED_PREFIX, NOTICE_DONE_PREFIX
from durable.store.outside_sql import OutsideOps

ATTEMPTS = 5
"""Tries of one cancel; a deadlock victim's transaction wrote nothing, so it may retry."""

BACKOFF_S = 0.02
"""First pause between tries (doubled each time, jittered) so the winner can commit."""

# A transaction PostgreSQL aborted so that another could go on (deadlock victim, or a
# serialization failure under a stricter isolation level): nothing of it was written.
_ABORTED = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


class PgCancel:
    """`cancel` of the Store protocol, on an asyncpg pool (see the module docstring)."""

    channel: str

    @property
    def pool(self) -> asyncpg.Pool:  # provided by PostgresStore
        raise NotImplementedError

    async def cancel(self, run_id: str, now: datetime, cleanup_s: float | None = None) -> list[str]:
        for attempt in range(ATTEMPTS):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    return await self._cancel_tree(conn, run_id, now, cleanup_s)
            except _ABORTED:
                if attempt == ATTEMPTS - 1:
                    raise
            await asyncio.sleep(BACKOFF_S * 2**attempt * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    @staticmethod
    async def _generations(conn: asyncpg.Connection, run_id: str) -> list[list[str]]:
        """The run, its children, their children...: one generation per query (Citus
        refuses a recursive CTE that does not filter on the distribution column)."""
        generations = [[run_id]]
        while True:
            below = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM runs WHERE parent_run_id = ANY($1::text[])",
                    generations[-1],
                )
            ]
            if not below:
                return generations
            generations.append(below)

    @staticmethod
    async def _lock(conn: asyncpg.Connection, ids: Sequence[str]) -> None:
        """Lock the unfinished runs among `ids`, in id order (as the commit does).

        A run a commit finishes while this waits is skipped: PostgreSQL re-checks the
        status once the lock is free, and a finished run needs no lock.
        """
        if ids:
            await conn.execute(
                "SELECT 1 FROM runs WHERE id = ANY($1::text[])"
                "  AND status NOT IN ('completed', 'failed', 'cancelled')"
                " ORDER BY id FOR NO KEY UPDATE",
                list(ids),
            )

    async def _cancel_tree(
        self, conn: asyncpg.Connection, run_id: str, now: datetime, cleanup_s: float | None
    ) -> list[str]:
        generations = await self._generations(conn, run_id)
        # Children before parents, the root last: the group commit's order.
        for generation in reversed(generations[1:]):
            await self._lock(conn, generation)
        await OutsideOps._lock_open(conn, run_id)  # RunNotFound / RunClosed
        locked = {i for g in generations for i in g}
        # A run not yet locked may have started a child meanwhile: walk again until the
        # tree holds no run this transaction has not locked (new runs are rare here).
        while True:
            generations = await self._generations(conn, run_id)
            tree = [i for g in generations for i in g]
            fresh = [i for i in tree if i not in locked]
            if not fresh:
                break
            await self._lock(conn, fresh)
            locked.update(fresh)
        rows = await conn.fetch(
            "UPDATE runs r SET status = 'cancelled', error = 'cancelled', finished_at = $2,"
            "  updated_at = $2, lease_owner = NULL, lease_until = NULL, ready_at = NULL,"
            "  waiting_on = '{}', pending = NULL,"
            # A run that started owes its cleanup (migration 0007): a worker replays
            # it and raises WorkflowCancelled where it stopped, until the grace ends.
            "  cleanup_until = CASE WHEN r.started_at IS NOT NULL THEN $3::timestamptz END"
            " WHERE r.id = ANY($1::text[])"
            "  AND r.status NOT IN ('completed', 'failed', 'cancelled')"
            " RETURNING r.id, r.parent_run_id",
            tree,
            now,
            # Computed here: Citus refuses non-immutable functions inside CASE.
            None if cleanup_s is None else now + timedelta(seconds=cleanup_s),
        )
        ids = [r["id"] for r in rows]
        # The cancelled runs' rows are locked, so no worker can append concurrently and
        # max(seq) + 1 is the next free sequence number.
        await conn.execute(
            "INSERT INTO events (run_id, seq, pos, kind, name, payload, created_at)"
            " SELECT x, coalesce((SELECT max(seq) FROM events e WHERE e.run_id = x), 0) + 1,"
            "  $2, $3, '', NULL, $4 FROM unnest($1::text[]) x",
            ids,
            RUN_POS,
            EventKind.RUN_CANCELLED.value,
            now,
        )
        # The root's parent (outside the tree) is locked last: child before parent again.
        pairs = [(r["parent_run_id"], r["id"]) for r in rows if r["id"] == run_id]
        if pairs and pairs[0][0] is not None:
            await conn.execute(
                "SELECT durable_wake_parents($1::text[], $2::text[], $3, $4)",
                [p for p, _ in pairs],
                [c for _, c in pairs],
                now,
                self.channel,
            )
        await conn.execute(
            "SELECT pg_notify($1, $3 || x), pg_notify($1, $4 || x) FROM unnest($2::text[]) x",
            self.channel,
            ids,
            NOTICE_CANCELLED_PREFIX,
            NOTICE_DONE_PREFIX,
        )
        return ids
