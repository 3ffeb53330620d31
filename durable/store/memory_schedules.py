"""MemoryStore's schedules: the same compare-and-set rules as the SQL in pg_schedules.py.

Each method runs without awaiting, so on one event loop it is atomic: of several
schedulers racing on one tick, the first to run its compare-and-set wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from durable.store.base import ScheduleRow


class MemorySchedules:
    """The schedule methods of the Store protocol, on a dict of rows by name."""

    def __init__(self) -> None:
        self._schedules: dict[str, ScheduleRow] = {}

    def _put(self, row: ScheduleRow, **changes: object) -> None:
        self._schedules[row.name] = msgspec.structs.replace(row, **changes)

    async def list_schedules(self) -> list[ScheduleRow]:
        return [self._schedules[n] for n in sorted(self._schedules)]

    async def get_schedule(self, name: str) -> ScheduleRow | None:
        return self._schedules.get(name)

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
        row = self._schedules.get(name)
        if row is None:
            self._schedules[name] = ScheduleRow(
                name=name,
                workflow=workflow,
                expression=expression,
                timezone=timezone,
                next_fire_at=next_fire_at,
                last_fired_at=None,
                paused=False,
                active=True,
                pending_fire_at=None,
                claimed_at=None,
                updated_at=now,
            )
            return True
        if (row.workflow, row.expression, row.timezone, row.active) == (
            workflow,
            expression,
            timezone,
            True,
        ):
            return False
        restart = row.expression != expression or row.timezone != timezone or not row.active
        self._put(
            row,
            workflow=workflow,
            expression=expression,
            timezone=timezone,
            active=True,
            next_fire_at=next_fire_at if restart else row.next_fire_at,
            updated_at=now,
        )
        return True

    async def deactivate_schedules(
        self, workflows: Sequence[str], keep: Sequence[str], now: datetime
    ) -> list[str]:
        wanted, kept = set(workflows), set(keep)
        removed = [
            r
            for r in self._schedules.values()
            if r.active and r.workflow in wanted and r.name not in kept
        ]
        for row in removed:
            self._put(row, active=False, updated_at=now)
        return sorted(r.name for r in removed)

    async def due_schedules(self, names: Sequence[str], now: datetime) -> list[ScheduleRow]:
        rows = [
            r
            for n in set(names)
            if (r := self._schedules.get(n)) is not None
            and r.active
            and not r.paused
            and r.next_fire_at <= now
        ]
        return sorted(rows, key=lambda r: (r.next_fire_at, r.name))

    async def stale_schedule_claims(
        self, names: Sequence[str], claimed_before: datetime
    ) -> list[ScheduleRow]:
        rows = [
            r
            for n in set(names)
            if (r := self._schedules.get(n)) is not None
            and r.pending_fire_at is not None
            and r.claimed_at is not None
            and r.claimed_at < claimed_before
        ]
        return sorted(rows, key=lambda r: r.name)

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
        row = self._schedules.get(name)
        if (
            row is None
            or row.next_fire_at != due_at
            or not row.active
            or row.paused
            or row.pending_fire_at is not None
            or row.expression != expression
            or row.timezone != timezone
        ):
            return False
        self._put(
            row,
            next_fire_at=next_fire_at,
            last_fired_at=fire_at,
            pending_fire_at=fire_at,
            claimed_at=now,
            updated_at=now,
        )
        return True

    async def confirm_schedule_tick(self, name: str, fire_at: datetime) -> None:
        row = self._schedules.get(name)
        if row is not None and row.pending_fire_at == fire_at:
            self._put(row, pending_fire_at=None)

    async def reclaim_schedule_tick(
        self, name: str, fire_at: datetime, claimed_before: datetime, now: datetime
    ) -> bool:
        row = self._schedules.get(name)
        if (
            row is None
            or row.pending_fire_at != fire_at
            or row.claimed_at is None
            or not row.claimed_at < claimed_before
        ):
            return False
        self._put(row, claimed_at=now)
        return True

    async def next_schedule_due(self, names: Sequence[str]) -> datetime | None:
        times = [
            r.next_fire_at
            for n in set(names)
            if (r := self._schedules.get(n)) is not None and r.active and not r.paused
        ]
        return min(times, default=None)

    async def pause_schedule(self, name: str, now: datetime) -> bool:
        row = self._schedules.get(name)
        if row is None:
            return False
        self._put(row, paused=True, updated_at=now)
        return True

    async def resume_schedule(
        self, name: str, *, expression: str, timezone: str, next_fire_at: datetime, now: datetime
    ) -> bool:
        row = self._schedules.get(name)
        if (
            row is None
            or not row.paused
            or (row.expression, row.timezone) != (expression, timezone)
        ):
            return False
        self._put(row, paused=False, next_fire_at=next_fire_at, updated_at=now)
        return True
