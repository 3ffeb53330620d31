"""A workflow with a schedule, for `durable schedules ...` (kept apart from app.py so the
worker tests do not depend on the scheduler)."""

from __future__ import annotations

from typing import Any

from durable import Context, Schedule, workflow


@workflow(schedules=[Schedule("0 0 1 1 *", name="cli-yearly")])
async def yearly(ctx: Context, input: Any) -> str:
    return "happy new year"
