"""PostgresStore's flow-control queries: the queued claim, debounce, queue stats.

A mixin so the store's main module stays readable. The claim itself is the function
`durable_claim_queue` of migration 0006, whose header says what protects each limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from durable.store.base import ClaimedRun, Created, KeyStats, NewRun, QueueSpec, QueueStats
from durable.store.pg_rows import claimed as _claimed


class PgQueueQueries:
    """The queue methods of the Store protocol, on an asyncpg pool."""

    @property
    def pool(self) -> asyncpg.Pool:  # pragma: no cover - provided by PostgresStore
        raise NotImplementedError

    async def _claim_fetch(
        self, query: str, *args: Any
    ) -> list[asyncpg.Record]:  # pragma: no cover - provided by PostgresStore
        raise NotImplementedError

    async def claim_queue(
        self,
        *,
        owner: str,
        queue: QueueSpec,
        keys: Sequence[tuple[str, str]],
        limit: int,
        now: datetime,
        lease_s: float,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedRun]:
        if limit <= 0 or not keys:
            return []
        rows = await self._claim_fetch(
            "SELECT * FROM durable_claim_queue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            queue.name,
            queue.concurrency,
            queue.per_key_concurrency,
            queue.rate_limit,
            queue.rate_period_s,
            owner,
            [k[0] for k in keys],
            [k[1] for k in keys],
            limit,
            now,
            lease_s,
            list(exclude),
        )
        return [_claimed(r) for r in rows]

    async def create_debounced(self, run: NewRun, now: datetime) -> Created:
        # The partial unique index runs_debounce admits one not-yet-started run per
        # (workflow, debounce key): concurrent triggers meet in this upsert, and a run a
        # claimer started meanwhile has left the index, so the trigger inserts a new one.
        deadline = now + timedelta(seconds=run.deadline_s) if run.deadline_s is not None else None
        row = await self.pool.fetchrow(
            "INSERT INTO runs AS r (id, workflow, version, status, input, parent_run_id,"
            " ready_at, deadline, created_at, updated_at, queue, queue_key, priority,"
            " debounce_key)"
            " VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $8, $9, $10, $11, $12)"
            " ON CONFLICT (workflow, debounce_key)"
            "  WHERE debounce_key IS NOT NULL AND status = 'pending' AND started_at IS NULL"
            " DO UPDATE SET input = EXCLUDED.input, ready_at = EXCLUDED.ready_at,"
            "  queue_key = EXCLUDED.queue_key, priority = EXCLUDED.priority,"
            "  updated_at = EXCLUDED.updated_at"
            " RETURNING r.id, r.id = $1 AS created",
            run.run_id,
            run.workflow,
            run.version,
            run.input,
            run.parent_run_id,
            run.ready_at or now,
            deadline,
            now,
            run.queue,
            run.queue_key,
            run.priority,
            run.debounce_key,
        )
        assert row is not None
        return Created(row["id"], bool(row["created"]))

    async def upsert_queues(self, queues: Sequence[QueueSpec], now: datetime) -> None:
        if not queues:
            return
        await self.pool.execute(
            "INSERT INTO queues AS q (name, concurrency, per_key_concurrency, rate_limit,"
            " rate_period_s, updated_at)"
            " SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::int[],"
            "  $5::float8[], $6::timestamptz[])"
            " ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency,"
            "  per_key_concurrency = EXCLUDED.per_key_concurrency,"
            "  rate_limit = EXCLUDED.rate_limit, rate_period_s = EXCLUDED.rate_period_s,"
            "  updated_at = EXCLUDED.updated_at"
            " WHERE (q.concurrency, q.per_key_concurrency, q.rate_limit, q.rate_period_s)"
            "  IS DISTINCT FROM (EXCLUDED.concurrency, EXCLUDED.per_key_concurrency,"
            "  EXCLUDED.rate_limit, EXCLUDED.rate_period_s)",
            [q.name for q in queues],
            [q.concurrency for q in queues],
            [q.per_key_concurrency for q in queues],
            [q.rate_limit for q in queues],
            [q.rate_period_s for q in queues],
            [now] * len(queues),
        )

    async def queue_stats(self, now: datetime, name: str | None = None) -> list[QueueStats]:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            # One snapshot for the whole report, so the numbers agree with each other.
            queues = await conn.fetch(
                "SELECT name, concurrency, per_key_concurrency, rate_limit, rate_period_s"
                " FROM queues WHERE ($1::text IS NULL OR name = $1) ORDER BY name",
                name,
            )
            if not queues:
                return []
            names = [q["name"] for q in queues]
            counts = await conn.fetch(
                "SELECT queue, queue_key,"
                " count(*) FILTER (WHERE started_at IS NOT NULL) AS active,"
                " count(*) FILTER (WHERE started_at IS NULL) AS pending"
                " FROM runs WHERE queue = ANY($1::text[])"
                "  AND status IN ('pending', 'running', 'suspended')"
                " GROUP BY queue, queue_key ORDER BY queue, queue_key",
                names,
            )
            windows = await conn.fetch(
                "SELECT q.name, (SELECT count(*) FROM runs r WHERE r.queue = q.name"
                "  AND r.started_at > $2::timestamptz - make_interval(secs => q.rate_period_s))"
                "  AS n FROM queues q WHERE q.name = ANY($1::text[]) AND q.rate_period_s IS NOT NULL",
                names,
                now,
            )
        window = {w["name"]: int(w["n"]) for w in windows}
        out: list[QueueStats] = []
        for q in queues:
            mine = [c for c in counts if c["queue"] == q["name"]]
            out.append(
                QueueStats(
                    name=q["name"],
                    concurrency=q["concurrency"],
                    per_key_concurrency=q["per_key_concurrency"],
                    rate_limit=q["rate_limit"],
                    rate_period_s=q["rate_period_s"],
                    active=sum(int(c["active"]) for c in mine),
                    pending=sum(int(c["pending"]) for c in mine),
                    window_starts=window.get(q["name"], 0),
                    keys=[
                        KeyStats(c["queue_key"], int(c["active"]), int(c["pending"]))
                        for c in mine
                        if c["queue_key"] is not None
                    ],
                )
            )
        return out
