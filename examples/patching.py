"""Changing a workflow while runs are in flight: the three phases of a patch.

Version 1 of `ship_order` charges, waits until the parcel is packed, then notifies.
We now want to validate the address *before* charging. Runs already past the charge
must not meet a new step at a position where their history holds the charge, so the
change is guarded by `ctx.patched("validate-address")`:

- phase 1 (add the patch): `if ctx.patched(id): new else: old`. Runs that reach the
  check live record a marker and take the new path; runs recorded before the patch
  replay through the old branch (the check answers False and takes no position).
- phase 2 (deprecate): once no run recorded before the patch is in flight, drop the old
  branch and call `ctx.deprecate_patch(id)`: runs recorded in phase 1 hold the marker
  and still replay.
- phase 3 (remove): once no run recorded with the marker is in flight, remove the call.

Each deploy below is a worker restart on new code, the same workflow name and version.

    python examples/patching.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from durable import Context, Runtime, workflow
from durable.store.memory import MemoryStore

DONE: list[str] = []  # what the step bodies did, in order


def act(what: str) -> str:
    DONE.append(what)
    return what


@workflow(name="ship_order", version="1")
async def ship_order_v0(ctx: Context, order: str) -> list[str]:
    """As first deployed."""
    steps = [await ctx.step("charge", act, f"charge {order}")]
    await ctx.wait_for_signal("packed")
    steps.append(await ctx.step("notify", act, f"notify {order}"))
    return steps


@workflow(name="ship_order", version="1")
async def ship_order_v1(ctx: Context, order: str) -> list[str]:
    """Phase 1: the new step behind a patch check."""
    steps = []
    if ctx.patched("validate-address"):
        steps.append(await ctx.step("validate", act, f"validate {order}"))
    steps.append(await ctx.step("charge", act, f"charge {order}"))
    await ctx.wait_for_signal("packed")
    steps.append(await ctx.step("notify", act, f"notify {order}"))
    return steps


@workflow(name="ship_order", version="1")
async def ship_order_v2(ctx: Context, order: str) -> list[str]:
    """Phase 2: every pre-patch run has ended; the old branch is gone."""
    ctx.deprecate_patch("validate-address")
    steps = [await ctx.step("validate", act, f"validate {order}")]
    steps.append(await ctx.step("charge", act, f"charge {order}"))
    await ctx.wait_for_signal("packed")
    steps.append(await ctx.step("notify", act, f"notify {order}"))
    return steps


@workflow(name="ship_order", version="1")
async def ship_order_v3(ctx: Context, order: str) -> list[str]:
    """Phase 3: no run recorded with the marker is left in flight; the call is gone."""
    steps = [await ctx.step("validate", act, f"validate {order}")]
    steps.append(await ctx.step("charge", act, f"charge {order}"))
    await ctx.wait_for_signal("packed")
    steps.append(await ctx.step("notify", act, f"notify {order}"))
    return steps


async def _until_waiting(rt: Runtime, run_id: str) -> None:
    while (await rt.get_run(run_id)).status != "suspended":
        await asyncio.sleep(0.02)


async def main(dsn: str | None = None, schema: str = "durable") -> dict[str, Any]:
    dsn = dsn or os.environ.get("DURABLE_DSN") or "memory://"
    # One store for every "deploy" (memory://: one MemoryStore shared by the runtimes).
    shared = MemoryStore() if dsn == "memory://" else None

    def deploy(code: Any) -> Runtime:
        if shared is not None:
            return Runtime(store=shared, workflows=[code])
        return Runtime(dsn, schema=schema, workflows=[code])

    results: dict[str, Any] = {}
    async with deploy(ship_order_v0) as rt:
        old = await rt.trigger(ship_order_v0, "A")  # charged, waiting to be packed
        await _until_waiting(rt, old.run_id)

    async with deploy(ship_order_v1) as rt:  # phase 1
        await rt.signal(old.run_id, "packed")
        results["A (recorded before the patch)"] = await rt.handle(old.run_id).result(10)
        mid = await rt.trigger(ship_order_v1, "B")  # takes the new path, in flight
        await _until_waiting(rt, mid.run_id)

    async with deploy(ship_order_v2) as rt:  # phase 2: B replays through its marker
        await rt.signal(mid.run_id, "packed")
        results["B (recorded in phase 1)"] = await rt.handle(mid.run_id).result(10)

    async with deploy(ship_order_v3) as rt:  # phase 3
        new = await rt.trigger(ship_order_v3, "C")
        await _until_waiting(rt, new.run_id)
        await rt.signal(new.run_id, "packed")
        results["C (phase 3)"] = await rt.handle(new.run_id).result(10)
    results["step bodies run"] = list(DONE)
    return results


if __name__ == "__main__":
    for key, value in asyncio.run(main()).items():
        print(f"{key}: {value}")
