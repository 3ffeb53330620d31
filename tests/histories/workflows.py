"""Workflows whose recorded histories live beside this file (*.jsonl).

Changing these functions' ctx calls breaks replay of the recorded histories on purpose:
record a new history (and keep the old one) instead. See test_recorded_histories.py.
"""

from __future__ import annotations

from typing import Any

from durable import Context, RetryPolicy, workflow

# Step bodies that must never run when a recorded history is replayed; a test swaps them.
CALLS: list[str] = []


def charge(amount: int) -> dict[str, Any]:
    CALLS.append("charge")
    return {"id": "ch_1", "amount": amount}


def ship(order_id: int) -> str:
    CALLS.append("ship")
    return f"track-{order_id}"


@workflow(
    name="recorded_order",
    version="1",
    retry_policy=RetryPolicy(max_attempts=3, initial_interval="10ms"),
)
async def recorded_order(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    payment = await ctx.step("charge", charge, order["amount"])
    stamp = ctx.now()
    await ctx.sleep("settle", "10ms")
    decision = await ctx.wait_for_signal("review", timeout="1h")
    parts = await ctx.parallel([ctx.step("a", lambda: "A"), ctx.step("b", lambda: "B")])
    await ctx.emit_event("reviewed", {"approved": bool(decision and decision["ok"])})
    tracking = await ctx.step(ship, order["order_id"])
    return {
        "payment": payment["id"],
        "tracking": tracking,
        "parts": parts,
        "stamped": stamp.year > 2000,
        "decision": decision,
    }
