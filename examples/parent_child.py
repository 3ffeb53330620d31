"""Parent and child workflows: a parent starts one child per region, some in the
background (`ctx.start_child`) and one inline (`ctx.child`), collects their results,
and handles a failed child as an ordinary exception.

Children are full runs: they have their own history and status, survive restarts on
their own, and their parent waits for them durably (suspended, holding no slot).

    python examples/parent_child.py
"""

from __future__ import annotations

import asyncio

from durable import Context, RetryPolicy, Runtime, WorkflowFailed, workflow

NO_RETRY_ON_LOOKUP = RetryPolicy(non_retryable=[LookupError])
SALES = {"eu": [120, 80, 200], "us": [300, 150], "apac": [90, 60, 30, 20]}


def load_sales(region: str) -> list[int]:
    if region not in SALES:
        raise LookupError(f"no sales data for region {region!r}")
    return SALES[region]


@workflow(name="region_report", version="1")
async def region_report(ctx: Context, region: str) -> dict:
    # A per-step policy: retrying will not make a missing region appear.
    sales = await ctx.step("load-sales", load_sales, region, retry=NO_RETRY_ON_LOOKUP)
    await ctx.sleep("settle", "100ms")
    return {"region": region, "total": sum(sales), "parent": ctx.parent_run_id}


@workflow(name="global_report", version="1")
async def global_report(ctx: Context, regions: list[str]) -> dict:
    # Start children in the background: each exists (durably) once start_child returns.
    handles = [await ctx.start_child(region_report, r, run_id=f"{ctx.run_id}-{r}") for r in regions]
    # ...then wait for each one. ctx.parallel([h.result() for h in handles]) works too.
    totals = {}
    for h in handles:
        out = await h.result()
        totals[out["region"]] = out["total"]
    # A child that fails raises WorkflowFailed in the parent, which may handle it.
    try:
        await ctx.child(region_report, "mars")
        missing = None
    except WorkflowFailed as exc:
        missing = exc.error
    return {"totals": totals, "grand_total": sum(totals.values()), "failed_child": missing}


async def main(dsn: str | None = None, schema: str | None = None) -> dict:
    async with Runtime(
        dsn, workflows=[global_report, region_report], schema=schema or "durable"
    ) as rt:
        handle = await rt.trigger(global_report, ["eu", "us", "apac"])
        result = await handle.result(timeout=30)
        print(f"parent {handle.run_id}: {result}")
        children = await rt.get_child_runs(handle.run_id)
        for child in sorted(children, key=lambda c: c.created_at):
            print(f"  child {child.run_id}: {child.status} {child.output or child.error}")
        parent = await rt.get_parent_run(children[0].run_id)
        print(f"parent of {children[0].run_id} is {parent.run_id if parent else None}")
    return {
        "result": result,
        "children": sorted((c.input, str(c.status)) for c in children),
        "parent_of_child": parent.run_id if parent else None,
        "run_id": handle.run_id,
    }


if __name__ == "__main__":
    asyncio.run(main())
