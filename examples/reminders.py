"""Reminders (the Sonamu `send_reminders` example), with durable timers.

The workflow fetches the pending reminders, then for each one sleeps *until* its due
time with `ctx.sleep_until` (an absolute, aware datetime), sends it, and waits a little
between sends to respect the notification service's rate limit. While asleep the run
holds no worker slot; a restart would not move any due time.

    python examples/reminders.py
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec

from durable import Context, Runtime, workflow


class Reminder(msgspec.Struct):
    id: int
    user_id: int
    title: str
    due_at: datetime


class TaskModel:
    """Stands in for a model class; its bound methods are steps (Sonamu's `step.get`)."""

    def __init__(self) -> None:
        self.pending: list[Reminder] = []
        self.sent: list[tuple[int, datetime]] = []

    def find_pending_reminders(self) -> list[Reminder]:
        return sorted(self.pending, key=lambda r: r.due_at)

    async def send_reminder(self, reminder_id: int, user_id: int, title: str) -> dict:
        self.sent.append((reminder_id, datetime.now(UTC)))
        print(f"  [notify] user {user_id}: {title!r}")
        return {"task_id": reminder_id}


tasks = TaskModel()


@workflow(name="send_reminders", version="1")
async def send_reminders(ctx: Context, params: dict) -> dict:
    found = await ctx.step(tasks.find_pending_reminders)  # step named "find_pending_reminders"
    # Step results come back as plain data (what msgspec recorded): convert if you
    # want the Struct back.
    reminders = msgspec.convert(found, list[Reminder])
    ctx.logger.info("found %d reminders", len(reminders))
    for r in reminders:
        await ctx.sleep_until(f"until-{r.id}", r.due_at)
        await ctx.step(f"send-reminder-{r.id}", tasks.send_reminder, r.id, r.user_id, r.title)
        await ctx.sleep(params["rate_limit"])  # unnamed: recorded as "sleep"
    return {"sent": len(reminders), "at": ctx.now()}


async def main(dsn: str | None = None, schema: str | None = None) -> dict:
    now = datetime.now(UTC)
    tasks.sent.clear()
    tasks.pending = [
        Reminder(1, 10, "Pay the electricity bill", now + timedelta(milliseconds=1200)),
        Reminder(2, 11, "Dentist appointment", now + timedelta(milliseconds=400)),
        Reminder(3, 10, "Renew passport", now + timedelta(milliseconds=800)),
    ]
    async with Runtime(dsn, workflows=[send_reminders], schema=schema or "durable") as rt:
        handle = await rt.trigger(send_reminders, {"rate_limit": "100ms"})
        while await handle.status() in ("pending", "running"):
            await asyncio.sleep(0.02)
        waits = (await rt.get_run(handle.run_id)).pending
        print(f"run suspended, waiting on {[(w['kind'], w['name']) for w in waits]}")
        result = await handle.result(timeout=30)
    due = {r.id: r.due_at for r in tasks.pending}
    late = {rid: (at - due[rid]).total_seconds() for rid, at in tasks.sent}
    for rid, seconds in late.items():
        print(f"reminder {rid} sent {seconds * 1000:.0f} ms after its due time")
    return {"result": result, "order": [rid for rid, _ in tasks.sent], "late_s": late}


if __name__ == "__main__":
    asyncio.run(main())
