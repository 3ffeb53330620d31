"""Flow control: per-tenant serialisation, a partner API's rate limit, an urgent lane and a
debounced sync -- all enforced by the database, for every worker at once.

    python examples/flow_control.py
"""

from __future__ import annotations

import asyncio
import time

from durable import Context, Queue, Runtime, workflow

# A partner API: at most 4 calls in flight, 20 per second, and one at a time per tenant
# (its per-account endpoints are not safe to call concurrently).
partner = Queue("partner-api", concurrency=4, per_key_concurrency=1, rate_limit=(20, "1s"))
# Reports: one at a time; urgent ones jump the line with a lower priority number.
reports = Queue("reports", concurrency=1)
# Search reindexing: many edits in a burst should cause one reindex, with the last state.
search = Queue("search", concurrency=2)

calls: list[tuple[str, float, float]] = []  # (tenant, start, end) of each partner call
report_order: list[str] = []
reindexed: list[dict] = []


async def call_partner(tenant: str, item: int) -> str:
    start = time.monotonic()
    await asyncio.sleep(0.02)  # the HTTP round trip
    calls.append((tenant, start, time.monotonic()))
    return f"{tenant}/{item} synced"


async def render(name: str) -> str:
    report_order.append(name)
    await asyncio.sleep(0.01)
    return f"{name}.pdf"


async def reindex(doc: dict) -> int:
    reindexed.append(doc)
    return doc["version"]


@workflow(name="sync_item", queue=partner)
async def sync_item(ctx: Context, job: dict) -> str:
    return await ctx.step("call-partner", call_partner, job["tenant"], job["item"])


@workflow(name="build_report", queue=reports)
async def build_report(ctx: Context, name: str) -> str:
    return await ctx.step("render", render, name)


@workflow(name="reindex_document", queue=search)
async def reindex_document(ctx: Context, doc: dict) -> int:
    return await ctx.step("reindex", reindex, doc)


def _most_overlapping(spans: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


async def main(dsn: str | None = None, schema: str | None = None) -> dict:
    calls.clear()
    report_order.clear()
    reindexed.clear()
    schema = schema or "durable"
    workflows = [sync_item, build_report, reindex_document]

    # Queue work before any worker runs, as a busy backlog would look.
    async with Runtime(dsn, workflows=workflows, schema=schema, worker=False) as client:
        for name in ("weekly", "monthly", "quarterly"):
            await client.trigger(build_report, name)
        await client.trigger(build_report, "incident", priority=-1)  # the urgent lane
        jobs = [
            await client.trigger(sync_item, {"tenant": t, "item": i}, key=t)
            for i in range(4)
            for t in ("acme", "globex", "initech")
        ]
        stats = await client.queue_stats("partner-api")
        print(f"partner-api before workers: {stats.pending} pending, {stats.active} active")

    async with Runtime(dsn, workflows=workflows, schema=schema, poll_interval="50ms") as rt:
        # Ten edits in a burst: one reindex, 150 ms after the last, with the last version.
        edits = []
        for version in range(1, 11):
            edits.append(
                await rt.trigger(
                    reindex_document,
                    {"doc": "faq", "version": version},
                    debounce=("faq", "150ms"),
                )
            )
        for h in jobs:
            await rt.handle(h.run_id).result(timeout=30)
        reports_done = [
            await rt.handle(r.run_id).result(timeout=30)
            for r in await rt.list_runs(workflow="build_report")
        ]
        version = await edits[-1].result(timeout=30)
        after = await rt.queue_stats("partner-api")

    per_tenant = {
        t: _most_overlapping([(s, e) for tenant, s, e in calls if tenant == t])
        for t in ("acme", "globex", "initech")
    }
    print(f"partner calls: {len(calls)}, at most {per_tenant} at once per tenant")
    print(f"reports rendered in order: {report_order}")
    print(f"edits: {len({h.run_id for h in edits})} run, reindexed version {version}")
    return {
        "partner_calls": len(calls),
        "per_tenant_max": per_tenant,
        "overall_max": _most_overlapping([(s, e) for _, s, e in calls]),
        "report_order": report_order,
        "reports": sorted(reports_done),
        "debounced_runs": len({h.run_id for h in edits}),
        "reindexed": reindexed,
        "active_after": after.active,
    }


if __name__ == "__main__":
    asyncio.run(main())
