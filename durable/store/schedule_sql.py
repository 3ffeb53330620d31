"""SQL of the `schedules` table: upserts, the compare-and-set tick claim, and admin.

Every function takes an asyncpg pool or connection (whose `search_path` is the
runtime's schema) and runs parameterised statements only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

# An asyncpg Pool or Connection (asyncpg ships no type information).
Executor = Any

_SELECT = (
    "SELECT name, workflow, expression, timezone, next_fire_at, last_fired_at, paused, active,"
    " pending_fire_at, claimed_at, updated_at FROM schedules"
)


class ScheduleInfo(msgspec.Struct, frozen=True):
    """What `Runtime.list_schedules` reports about one schedule."""

    name: str
    workflow: str
    expression: str
    timezone: str
    next_fire_at: datetime
    last_fired_at: datetime | None
    paused: bool
    active: bool


class ScheduleRow(ScheduleInfo, frozen=True):
    """One row of the `schedules` table: the public fields plus the tick-claim state."""

    pending_fire_at: datetime | None
    claimed_at: datetime | None

    def info(self) -> ScheduleInfo:
        return ScheduleInfo(
            name=self.name,
            workflow=self.workflow,
            expression=self.expression,
            timezone=self.timezone,
            next_fire_at=self.next_fire_at,
            last_fired_at=self.last_fired_at,
            paused=self.paused,
            active=self.active,
        )

    updated_at: datetime


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


async def get(conn: Executor, name: str, *, for_update: bool = False) -> ScheduleRow | None:
    """The row named `name`; with `for_update`, locked until the transaction ends."""
    if for_update:
        r = await conn.fetchrow(_SELECT + " WHERE name = $1 FOR UPDATE", name)
    else:
        r = await conn.fetchrow(_SELECT + " WHERE name = $1", name)
    return None if r is None else _row(r)


async def list_all(conn: Executor) -> list[ScheduleRow]:
    rows = await conn.fetch(_SELECT + " ORDER BY name")
    return [_row(r) for r in rows]


async def upsert(
    conn: Executor,
    *,
    name: str,
    workflow: str,
    expression: str,
    timezone: str,
    next_fire_at: datetime,
    now: datetime,
) -> bool:
    """Make the row `name` match what the code declares, active; True if anything changed.

    A new row starts at `next_fire_at`. An existing one keeps its paused flag and its
    next fire time, unless its expression or timezone changed or it was inactive: then
    it restarts from `next_fire_at` (computed from now), so no stale tick fires.
    """
    r = await conn.fetchval(
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


async def deactivate_missing(
    conn: Executor, workflows: Sequence[str], keep: Sequence[str], now: datetime
) -> list[str]:
    """Mark inactive the active schedules of `workflows` whose name is not in `keep`."""
    rows = await conn.fetch(
        "UPDATE schedules SET active = false, updated_at = $3"
        " WHERE active AND workflow = ANY($1::text[]) AND NOT (name = ANY($2::text[]))"
        " RETURNING name",
        list(workflows),
        list(keep),
        now,
    )
    return sorted(str(r["name"]) for r in rows)


async def due(conn: Executor, names: Sequence[str], now: datetime) -> list[ScheduleRow]:
    """Active, unpaused schedules among `names` whose next fire time has come."""
    rows = await conn.fetch(
        _SELECT + " WHERE name = ANY($1::text[]) AND active AND NOT paused AND next_fire_at <= $2"
        " ORDER BY next_fire_at, name",
        list(names),
        now,
    )
    return [_row(r) for r in rows]


async def stale_claims(
    conn: Executor, names: Sequence[str], claimed_before: datetime
) -> list[ScheduleRow]:
    """Rows among `names` holding a claimed tick that was never confirmed as triggered."""
    rows = await conn.fetch(
        _SELECT
        + " WHERE name = ANY($1::text[]) AND pending_fire_at IS NOT NULL AND claimed_at < $2"
        " ORDER BY name",
        list(names),
        claimed_before,
    )
    return [_row(r) for r in rows]


async def claim(
    conn: Executor,
    *,
    name: str,
    due_at: datetime,
    expression: str,
    timezone: str,
    fire_at: datetime,
    next_fire_at: datetime,
    now: datetime,
) -> bool:
    """Compare-and-set: claim the tick `fire_at` of a schedule due at `due_at`.

    Succeeds for exactly one caller among any number racing on the same row: the
    first to commit moves `next_fire_at` past `due_at`, so every other UPDATE finds
    no row. The row must still be active, unpaused, hold no earlier unconfirmed
    claim, and have the expression and timezone the fire times were computed from.
    """
    r = await conn.fetchval(
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


async def confirm(conn: Executor, name: str, fire_at: datetime) -> None:
    """The run of the claimed tick `fire_at` exists (or was given up on): drop the claim."""
    await conn.execute(
        "UPDATE schedules SET pending_fire_at = NULL WHERE name = $1 AND pending_fire_at = $2",
        name,
        fire_at,
    )


async def reclaim(
    conn: Executor, name: str, fire_at: datetime, claimed_before: datetime, now: datetime
) -> bool:
    """Take over a stale claim (refresh `claimed_at`), so one recoverer retries it at a time."""
    r = await conn.fetchval(
        "UPDATE schedules SET claimed_at = $4"
        " WHERE name = $1 AND pending_fire_at = $2 AND claimed_at < $3 RETURNING true",
        name,
        fire_at,
        claimed_before,
        now,
    )
    return r is not None


async def next_due(conn: Executor, names: Sequence[str]) -> datetime | None:
    """The earliest next fire time of the active, unpaused schedules among `names`."""
    r = await conn.fetchval(
        "SELECT min(next_fire_at) FROM schedules"
        " WHERE name = ANY($1::text[]) AND active AND NOT paused",
        list(names),
    )
    return r if isinstance(r, datetime) else None


async def pause(conn: Executor, name: str, now: datetime) -> bool:
    """Set the paused flag; False if no schedule has that name."""
    r = await conn.fetchval(
        "UPDATE schedules SET paused = true, updated_at = $2 WHERE name = $1 RETURNING true",
        name,
        now,
    )
    return r is not None


async def resume(conn: Executor, name: str, next_fire_at: datetime, now: datetime) -> None:
    """Clear the paused flag and restart the schedule from `next_fire_at`."""
    await conn.execute(
        "UPDATE schedules SET paused = false, next_fire_at = $2, updated_at = $3 WHERE name = $1",
        name,
        next_fire_at,
        now,
    )
