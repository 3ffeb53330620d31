"""Workflows whose recorded histories hold the upgrade event kinds (patch_marker,
run_continued, cleanup_finished); recorded by `record_upgrades.py`, replayed by
`test_upgrade_histories.py`. Changing their ctx calls breaks those histories on purpose.
"""

from __future__ import annotations

from typing import Any

from durable import Context, workflow

# Step bodies run; a replay that re-runs a recorded step shows up here.
CALLS: list[str] = []


def call(name: str) -> str:
    CALLS.append(name)
    return name


@workflow(name="recorded_patch", version="1")
async def recorded_patch(ctx: Context, _: Any) -> list[str]:
    """Before the patch: charge, wait for "go", then a receipt."""
    if ctx.patched("invoice"):
        first = await ctx.step("invoice", call, "invoice")
    else:
        first = await ctx.step("charge", call, "charge")
    await ctx.wait_for_signal("go")
    return [first, await ctx.step("receipt", call, "receipt")]


@workflow(name="recorded_chain", version="1")
async def recorded_chain(ctx: Context, n: int) -> int:
    await ctx.step("work", call, f"work{n}")
    if n < 1:
        await ctx.continue_as_new(n + 1)
    return n


@workflow(name="recorded_cleanup", version="1")
async def recorded_cleanup(ctx: Context, _: Any) -> None:
    await ctx.step("reserve", call, "reserve")
    try:
        await ctx.wait_for_signal("confirm")
    finally:
        await ctx.step("release", call, "release")


ALL = [recorded_patch, recorded_chain, recorded_cleanup]
