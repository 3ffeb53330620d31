"""Fan-out / fan-in (the VSKI `batch-process` example): load a batch, process every
item in parallel as its own step, then aggregate.

`ctx.parallel` returns results in input order and raises the first error, like
`asyncio.gather` (which also works over ctx calls). Each item is recorded once: a run
that is replayed after a crash re-runs only the items whose results were not yet
recorded.

    python examples/fanout_batch.py
"""

from __future__ import annotations

import asyncio
import time

from durable import Context, RetryPolicy, Runtime, StepFailed, workflow

ITEMS = 12


def get_batch(batch_id: str, size: int) -> list[dict]:
    return [{"id": f"{batch_id}-{i}", "value": i} for i in range(size)]


async def process_item(item: dict) -> dict:
    await asyncio.sleep(0.2)  # e.g. an HTTP call; all items wait concurrently
    if item["value"] % 5 == 4:
        return {"id": item["id"], "success": False}
    return {"id": item["id"], "success": True, "result": item["value"] ** 2}


def thumbnail(item: dict) -> str:
    if item["value"] == 3:
        raise OSError("image is corrupt")
    return f"thumb-{item['id']}.png"


def save_summary(batch_id: str, summary: dict) -> None:
    print(f"  [db] batch {batch_id} done: {summary}")


@workflow(name="batch_process", version="1")
async def batch_process(ctx: Context, params: dict) -> dict:
    items = await ctx.step("get-batch", get_batch, params["batch_id"], params["size"])
    results = await ctx.parallel(
        [ctx.step(f"process-{item['id']}", process_item, item) for item in items]
    )
    summary = {
        "total": len(results),
        "succeeded": sum(1 for r in results if r["success"]),
        "failed": sum(1 for r in results if not r["success"]),
        "sum": sum(r.get("result", 0) for r in results),
    }
    # ctx.parallel raises the first error, like asyncio.gather. To keep going past
    # failures, gather with return_exceptions=True: every item is awaited and a step
    # that failed for good comes back as its StepFailed.
    thumbs = await asyncio.gather(
        *[
            ctx.step(f"thumb-{item['id']}", thumbnail, item, retry=RetryPolicy(max_attempts=1))
            for item in items[:4]
        ],
        return_exceptions=True,
    )
    summary["thumbnails"] = {
        "ok": sum(1 for t in thumbs if isinstance(t, str)),
        "failed": [t.step for t in thumbs if isinstance(t, StepFailed)],
    }
    await ctx.step("update-batch", save_summary, params["batch_id"], summary)
    return summary


async def main(dsn: str | None = None, schema: str | None = None) -> dict:
    async with Runtime(dsn, workflows=[batch_process], schema=schema or "durable") as rt:
        began = time.monotonic()
        handle = await rt.trigger(batch_process, {"batch_id": "b7", "size": ITEMS})
        summary = await handle.result(timeout=30)
        elapsed = time.monotonic() - began
        info = await rt.get_run(handle.run_id)
    steps = [e.name for e in info.history if e.kind == "step_completed"]
    print(f"{ITEMS} items of 0.2 s each took {elapsed:.2f} s in total")
    print(f"summary: {summary}")
    return {"summary": summary, "elapsed": elapsed, "recorded_steps": len(steps)}


if __name__ == "__main__":
    asyncio.run(main())
