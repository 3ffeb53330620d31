"""Workflows whose recorded histories live beside this file (*.jsonl).

Changing these functions' ctx calls breaks replay of the recorded histories on purpose:
record a new history (and keep the old one) instead. See test_recorded_histories.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from durable import (
    Context,
    RetryPolicy,
    StepFailed,
    WorkflowCancelled,
    WorkflowFailed,
    workflow,
)

from .upgrade_workflows import ALL as UPGRADE_WORKFLOWS

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


# -- workflows of the export-format histories (*.json, recorded by record.py) ----------
# Together their histories hold every event kind; test_offline_replay.py replays each
# file against these definitions.

FAST = RetryPolicy(max_attempts=3, initial_interval="10ms", maximum_interval="10ms")


def flaky_twice(key: str) -> str:
    FLAKY[key] = FLAKY.get(key, 0) + 1
    if FLAKY[key] < 3:
        raise RuntimeError(f"attempt {FLAKY[key]} of {key} fails")
    return f"{key} ok"


FLAKY: dict[str, int] = {}


def always_fails() -> None:
    raise ValueError("the card was declined")


@workflow(name="retrying", retry_policy=FAST)
async def retrying(ctx: Context, key: str) -> dict[str, Any]:
    ok = await ctx.step("flaky", flaky_twice, key)
    try:
        await ctx.step(
            "declined", always_fails, retry=RetryPolicy(max_attempts=2, initial_interval="10ms")
        )
    except StepFailed as exc:
        return {"ok": ok, "failed": exc.step}
    return {"ok": ok, "failed": None}


@workflow(name="failing", retry_policy=FAST)
async def failing(ctx: Context, _: Any) -> None:
    await ctx.step("prepare", lambda: "ready")
    raise ValueError("nothing to ship")


@workflow(name="waits")
async def waits(ctx: Context, _: Any) -> dict[str, Any]:
    await ctx.sleep("pause", "10ms")
    got = await ctx.wait_for_signal("go", timeout="1h")
    missed = await ctx.wait_for_signal("late", timeout="10ms")
    return {"got": got, "missed": missed}


@workflow(name="hooks")
async def hooks(ctx: Context, _: Any) -> dict[str, Any]:
    approve = await ctx.create_hook("approve")
    answer = await approve.wait(timeout="1h")
    late = await ctx.create_hook("late")
    missed = await late.wait(timeout="10ms")
    return {"answer": answer, "missed": missed}


@workflow(name="child_ok")
async def child_ok(ctx: Context, n: int) -> int:
    return int(await ctx.step("double", lambda: n * 2))


@workflow(name="child_fail", retry_policy=FAST)
async def child_fail(ctx: Context, _: Any) -> None:
    raise RuntimeError("child gave up")


@workflow(name="child_wait")
async def child_wait(ctx: Context, _: Any) -> Any:
    return await ctx.wait_for_signal("never")


@workflow(name="family")
async def family(ctx: Context, n: int) -> dict[str, Any]:
    doubled = await ctx.child(child_ok, n)
    try:
        await ctx.child(child_fail, None)
        failed = None
    except WorkflowFailed as exc:
        failed = "failed" if exc.error else "failed?"
    waiting = await ctx.start_child(child_wait, None)
    try:
        await waiting.result()
        cancelled = None
    except WorkflowCancelled:
        cancelled = "cancelled"
    return {"doubled": doubled, "failed": failed, "cancelled": cancelled}


@workflow(name="fan_out")
async def fan_out(ctx: Context, n: int) -> list[Any]:
    parts = await asyncio.gather(
        ctx.step("one", lambda: 1),
        ctx.sleep("tick", "10ms"),
        ctx.step("two", lambda: 2),
    )
    more = await ctx.parallel([ctx.step(f"sq{i}", lambda i=i: i * i) for i in range(n)])
    return [parts[0], parts[2], *more]


@workflow(name="recorded_values")
async def recorded_values(ctx: Context, _: Any) -> dict[str, Any]:
    when = ctx.now()
    luck = ctx.random()
    ident = ctx.uuid4()
    await ctx.emit_event("picked", {"luck": luck, "id": str(ident)})
    await ctx.emit_event("done")
    return {"year_ok": when.year > 2000, "luck_ok": 0 <= luck < 1, "id": str(ident)}


@workflow(name="cancellable")
async def cancellable(ctx: Context, _: Any) -> None:
    await ctx.step("reserve", lambda: "held")
    await ctx.sleep("hold", "1h")
    await ctx.step("release", lambda: "released")


@workflow(name="drifting")
async def drifting(ctx: Context, _: Any) -> str:
    """Recorded, then parked by a changed copy (`drifting_changed`) that diverged."""
    await ctx.step("a", lambda: "A")
    await ctx.wait_for_signal("go")
    return str(await ctx.step("b", lambda: "B"))


@workflow(name="drifting")
async def drifting_changed(ctx: Context, _: Any) -> str:
    """The deliberate code change: a step renamed at position 0."""
    await ctx.step("a_renamed", lambda: "A")
    await ctx.wait_for_signal("go")
    return str(await ctx.step("b", lambda: "B"))


@workflow(name="recorded_order", version="1")
async def recorded_order_changed(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    """`recorded_order` with a deliberate change: the timer moved before `ctx.now()`."""
    payment = await ctx.step("charge", charge, order["amount"])
    await ctx.sleep("settle", "10ms")
    stamp = ctx.now()
    decision = await ctx.wait_for_signal("review", timeout="1h")
    parts = await ctx.parallel([ctx.step("a", lambda: "A"), ctx.step("b", lambda: "B")])
    await ctx.emit_event("reviewed", {"approved": bool(decision and decision["ok"])})
    tracking = await ctx.step(ship, order["order_id"])
    return {"payment": payment["id"], "tracking": tracking, "parts": parts, "stamp": stamp.year}


WORKFLOWS = [
    recorded_order,
    retrying,
    failing,
    waits,
    hooks,
    child_ok,
    child_fail,
    child_wait,
    family,
    fan_out,
    recorded_values,
    cancellable,
    drifting,
    *UPGRADE_WORKFLOWS,  # patch_marker, run_continued, cleanup_finished (record_upgrades.py)
]
"""The current code: every recorded history must fit these."""
