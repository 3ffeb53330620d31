"""A scheduled report (the Sonamu `generate_monthly_report` example).

In production the schedule would be `Schedule("0 3 1 * *", ...)` (03:00 on the 1st of
each month). For the demo it fires every second, using the six-field form with
seconds first, and the script stops after a couple of ticks.

    python examples/monthly_report.py
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from durable import Context, Runtime, Schedule, workflow

DEMO_EXPRESSION = "* * * * * *"  # every second; production: "0 3 1 * *"
SCHEDULE_NAME = "monthly-report"


def last_month() -> dict:
    """Evaluated at each tick: the schedule's `input` may be a value or a callable."""
    now = datetime.now(UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return {"year": year, "month": month, "fired_at": now.isoformat()}


def aggregate_orders(year: int, month: int) -> dict:
    return {"total_orders": 120, "total_revenue": 98_500, "period": f"{year}-{month:02d}"}


def aggregate_users(year: int, month: int) -> dict:
    return {"new_users": 37}


def rank_products(year: int, month: int) -> list[dict]:
    return [{"product_id": 101, "sales": 40_000}, {"product_id": 102, "sales": 25_000}]


reports: list[dict] = []


def save_report(data: dict) -> dict:
    reports.append(data)
    return {"report_id": len(reports)}


def send_email(report_id: int, year: int, month: int) -> None:
    print(f"  [email] report {report_id} for {year}-{month:02d} sent to admin@example.com")


@workflow(
    name="generate_monthly_report",
    version="1",
    schedules=[Schedule(DEMO_EXPRESSION, name=SCHEDULE_NAME, input=last_month, timezone="UTC")],
)
async def generate_monthly_report(ctx: Context, period: dict) -> dict:
    year, month = period["year"], period["month"]
    orders = await ctx.step("aggregate-orders", aggregate_orders, year, month)
    users = await ctx.step("aggregate-users", aggregate_users, year, month)
    top = await ctx.step("rank-products", rank_products, year, month)
    saved = await ctx.step(
        "save-report", save_report, {"orders": orders, "users": users, "products": top}
    )
    await ctx.step("send-email", send_email, saved["report_id"], year, month)
    return {"report_id": saved["report_id"], "year": year, "month": month}


async def main(dsn: str | None = None, schema: str | None = None, ticks: int = 2) -> dict:
    reports.clear()
    started = datetime.now(UTC)
    async with Runtime(dsn, workflows=[generate_monthly_report], schema=schema or "durable") as rt:
        # Entering the runtime wrote the declared schedule to the database. A pause
        # survives restarts, so undo the one a previous demo run left behind.
        for s in await rt.list_schedules():
            if s.name == SCHEDULE_NAME:
                if s.paused:
                    await rt.resume_schedule(SCHEDULE_NAME)
                print(f"schedule {s.name!r} ({s.expression}) is active")
        # The worker's scheduler starts one run per tick; wait for a couple of them.
        async with asyncio.timeout(30):
            while True:
                runs = await rt.list_runs(workflow="generate_monthly_report", status="completed")
                mine = [r for r in runs if r.created_at >= started]
                if len(mine) >= ticks:
                    break
                await asyncio.sleep(0.1)
        # Stop the every-second schedule (`durable schedules pause monthly-report` does
        # the same from a shell); it stays paused until resumed, across restarts.
        await rt.pause_schedule(SCHEDULE_NAME)
        paused = [s.paused for s in await rt.list_schedules() if s.name == SCHEDULE_NAME]
        print(f"schedule paused after {len(mine)} runs")
        outputs = [r.output for r in reversed(mine)]
    for out in outputs:
        print(f"run output: {out}")
    return {"runs": len(outputs), "outputs": outputs, "paused": paused == [True]}


if __name__ == "__main__":
    asyncio.run(main())
