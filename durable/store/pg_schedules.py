"""PostgresStore's schedule queries: upserts, the compare-and-set tick claim, and admin.

A mixin so the store's main module stays readable; every statement is parameterised
and runs on the store's pool (whose `search_path` is the runtime's schema).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from durable.store.base import ScheduleRow

_SELECT = (
    "SELECT name, workflow, expression, timezone, next_fire_at, last_fired_at, paused, active,"
    " pending_fire_at, claimed_at, updated_at FROM schedules"
)


def _row(r: Any) -> ScheduleRow:
    return ScheduleRow(
        name=r["name"],
        workflow=r["workflow"],
        expression=r["expression"],
        timezone=r["timezone"],
        next_fire_at=r["next_fire_at"],
        last_fired_at=r["last_fired_at"],
        paused=r["paused"],
        active=r["active"],
        pending_fire_at=r["pending_fire_at"],
        claimed_at=r["claimed_at"],
        updated_at=r["updated_at"],
    )


class PgScheduleQueries:
    """The schedule methods of the Store protocol, on an asyncpg pool."""

    @property
    def pool(self) -> asyncpg.Pool:  # provided by PostgresStore
        raise NotImplementedError

    async def list_schedules(self) -> list[ScheduleRow]:
        rows = await self.pool.fetch(_SELECT + " ORDER BY name")
        return [_row(r) for r in rows]

    async def get_schedule(self, name: str) -> ScheduleRow | None:
        r = await self.pool.fetchrow(_SELECT + " WHERE name = $1", name)
        return None if r is None else _row(r)

    async def upsert_schedule(
        self,
        *,
        name: str,
        workflow: str,
        expression: str,
        timezone: str,
        next_fire_at: datetime,
        now: datetime,
    ) -> bool:
        r = await self.pool.fetchval(
            "INSERT INTO schedules AS s (name, workflow, expression, timezone, next_fire_at,"
            " paused, active, updated_at) VALUES ($1, $2, $3, $4, $5, false, true, $6)"
            " ON CONFLICT (name) DO UPDATE SET workflow = EXCLUDED.workflow,"
            " expression = EXCLUDED.expression, timezone = EXCLUDED.timezone, active = true,"
            " next_fire_at = CASE WHEN s.expression <> EXCLUDED.expression"
            "  OR s.timezone <> EXCLUDED.timezone OR NOT s.active"
            "  THEN EXCLUDED.next_fire_at ELSE s.next_fire_at END,"
            " updated_at = EXCLUDED.updated_at"
            " WHERE (s.workflow, s.expression, s.timezone, s.active)"
            "  IS DISTINCT FROM (EXCLUDED.workflow, EXCLUDED.expression, EXCLUDED.timezone, true)"
            " RETURNING true",
            name,
            workflow,
            expression,
            timezone,
            next_fire_at,
            now,
        )
        return r is not None

    async def deactivate_schedules(
        self, workflows: Sequence[str], keep: Sequence[str], now: datetime
    ) -> list[str]:
        rows = await self.pool.fetch(
            "UPDATE schedules SET active = false, updated_at = $3"
            " WHERE active AND workflow = ANY($1::text[]) AND NOT (name = ANY($2::text[]))"
            " RETURNING name",
            list(workflows),
            list(keep),
            now,
        )
        return sorted(str(r["name"]) for r in rows)

    async def due_schedules(self, names: Sequence[str], now: datetime) -> list[ScheduleRow]:
        rows = await self.pool.fetch(
            _SELECT
            + " WHERE name = ANY($1::text[]) AND active AND NOT paused AND next_fire_at <= $2"
            " ORDER BY next_fire_at, name",
            list(names),
            now,
        )
        return [_row(r) for r in rows]

    async def stale_schedule_claims(
        self, names: Sequence[str], claimed_before: datetime
    ) -> list[ScheduleRow]:
        rows = await self.pool.fetch(
            _SELECT
            + " WHERE name = ANY($1::text[]) AND pending_fire_at IS NOT NULL AND claimed_at < $2"
            " ORDER BY name",
            list(names),
            claimed_before,
        )
        return [_row(r) for r in rows]

    async def claim_schedule_tick(
        self,
        *,
        name: str,
        due_at: datetime,
        expression: str,
        timezone: str,
        fire_at: datetime,
        next_fire_at: datetime,
        now: datetime,
    ) -> bool:
        # Row locking serialises racing UPDATEs; the first to commit moves next_fire_at
        # past due_at, so every other one re-checks its WHERE and finds no row.
        r = await self.pool.fetchval(
            "UPDATE schedules SET next_fire_at = $5, last_fired_at = $4, pending_fire_at = $4,"
            " claimed_at = $6, updated_at = $6"
            " WHERE name = $1 AND next_fire_at = $2 AND active AND NOT paused"
            " AND pending_fire_at IS NULL AND expression = $3 AND timezone = $7"
            " RETURNING true",
            name,
            due_at,
            expression,
            fire_at,
            next_fire_at,
            now,
            timezone,
        )
        return r is not None

    async def confirm_schedule_tick(self, name: str, fire_at: datetime) -> None:
        await self.pool.execute(
            "UPDATE schedules SET pending_fire_at = NULL WHERE name = $1 AND pending_fire_at = $2",
            name,
            fire_at,
        )

    async def reclaim_schedule_tick(
        self, name: str, fire_at: datetime, claimed_before: datetime, now: datetime
    ) -> bool:
        r = await self.pool.fetchval(
            "UPDATE schedules SET claimed_at = $4"
            " WHERE name = $1 AND pending_fire_at = $2 AND claimed_at < $3 RETURNING true",
            name,
            fire_at,
            claimed_before,
            now,
        )
        return r is not None

    async def next_schedule_due(self, names: Sequence[str]) -> datetime | None:
        r = await self.pool.fetchval(
            "SELECT min(next_fire_at) FROM schedules"
            " WHERE name = ANY($1::text[]) AND active AND NOT paused",
            list(names),
        )
        return r if isinstance(r, datetime) else None

    async def pause_schedule(self, name: str, now: datetime) -> bool:
        r = await self.pool.fetchval(
            "UPDATE schedules SET paused = true, updated_at = $2 WHERE name = $1 RETURNING true",
            name,
            now,
        )
        return r is not None

    async def resume_schedule(
        self, name: str, *, expression: str, timezone: str, next_fire_at: datetime, now: datetime
    ) -> bool:
        r = await self.pool.fetchval(
            "UPDATE schedules SET paused = false, next_fire_at = $2, updated_at = $3"
            " WHERE name = $1 AND paused AND expression = $4 AND timezone = $5 RETURNING true",
            name,
            next_fire_at,
            now,
            expression,
            timezone,
        )
        return r is not None
