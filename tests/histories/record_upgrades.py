"""Record the upgrade histories beside this file (run once, by hand), each as NAME.jsonl
and as NAME.json (the `durable runs export` format): patch_v1 (a run recorded before the `invoice` patch existed),
patch_v2.jsonl (after), chain.jsonl (a run that continued as new), cleanup.jsonl (a
cancelled run whose cleanup ran).

python -m tests.histories.record_upgrades
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from durable import Context, Runtime, workflow

from .upgrade_workflows import call, recorded_chain, recorded_cleanup, recorded_patch

HERE = Path(__file__).resolve().parent


@workflow(name="recorded_patch", version="1")
async def patch_before(ctx: Context, _: Any) -> list[str]:
    first = await ctx.step("charge", call, "charge")
    await ctx.wait_for_signal("go")
    return [first, await ctx.step("receipt", call, "receipt")]


async def dump(rt: Runtime, run_id: str, name: str, meta: dict[str, Any]) -> None:
    # The export format (test_offline_replay.py) and the jsonl one (test_upgrade_histories).
    doc = await rt.export_run(run_id)
    (HERE / name.replace(".jsonl", ".json")).write_text(json.dumps(doc, indent=1) + "\n")
    info = await rt.get_run(run_id)
    events = await rt.store.load_events(run_id)
    lines = [{**meta, "workflow": info.workflow, "version": info.version, "status": info.status}]
    lines += [
        {
            "seq": e.seq,
            "pos": e.pos,
            "kind": e.kind,
            "name": e.name,
            "payload": None if e.payload is None else e.payload.hex(),
            "created_at": None if e.created_at is None else e.created_at.isoformat(),
        }
        for e in events
    ]
    (HERE / name).write_text("".join(json.dumps(x) + "\n" for x in lines))


async def main() -> None:
    async with Runtime("memory://", workflows=[patch_before]) as rt:
        h = await rt.trigger(patch_before, None)
        await rt.signal(h.run_id, "go")
        out = await h.result(timeout=10)
        await dump(rt, h.run_id, "patch_v1.jsonl", {"input": None, "output": out})
    async with Runtime("memory://", workflows=[recorded_patch]) as rt:
        h = await rt.trigger(recorded_patch, None)
        await rt.signal(h.run_id, "go")
        out = await h.result(timeout=10)
        await dump(rt, h.run_id, "patch_v2.jsonl", {"input": None, "output": out})
    async with Runtime("memory://", workflows=[recorded_chain]) as rt:
        h = await rt.trigger(recorded_chain, 0)
        out = await h.result(timeout=10)
        await dump(rt, h.run_id, "chain.jsonl", {"input": 0, "output": out})
    async with Runtime("memory://", workflows=[recorded_cleanup], sticky_cache=0) as rt:
        h = await rt.trigger(recorded_cleanup, None)
        while (await h.status()) != "suspended":
            await asyncio.sleep(0.01)
        await rt.cancel(h.run_id)
        while (await rt.get_run(h.run_id)).history[-1].kind != "cleanup_finished":
            await asyncio.sleep(0.01)
        await dump(rt, h.run_id, "cleanup.jsonl", {"input": None, "output": None})


if __name__ == "__main__":
    asyncio.run(main())
