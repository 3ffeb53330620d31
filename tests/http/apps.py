"""Workflows the HTTP tests (and `durable serve` in them) run."""

from __future__ import annotations

from typing import Any

import msgspec

from durable import Context, Schedule, workflow


class Order(msgspec.Struct):
    order_id: int
    amount: int


@workflow(schema=Order)
async def order(ctx: Context, o: Order) -> dict[str, int]:
    return {"order_id": o.order_id, "amount": o.amount}


@workflow
async def approval(ctx: Context, data: Any) -> Any:
    await ctx.emit_event("asked", {"for": data})
    answer = await ctx.wait_for_signal("approve")
    return {"input": data, "answer": answer}


@workflow
async def family(ctx: Context, n: Any) -> Any:
    kid = await ctx.start_child(approval, {"kid": n})
    return await kid.result()


@workflow
async def steps(ctx: Context, n: Any) -> Any:
    total = 0
    for i in range(int(n or 3)):
        total += await ctx.step(f"add-{i}", lambda i=i: i)
    await ctx.sleep("pause", "50ms")
    return total


@workflow(schedules=[Schedule("0 3 * * *", name="nightly")])
async def nightly(ctx: Context, _: Any) -> None:
    return None
