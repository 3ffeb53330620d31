"""Record the histories beside this file from real runs (run by hand, then commit them).

    DURABLE_DSN=postgresql://postgres@127.0.0.1:5432/postgres python -m tests.histories.record

(`DURABLE_DSN=memory://` records on the in-memory store: same histories, no database.
On PostgreSQL the runs go to a fresh schema `record_histories`, dropped first.)

Writes one export-format file (`durable runs export`, see durable.testing.replay) per
recorded run, `<name>.json`, and the legacy `order_v1.jsonl` that
test_recorded_histories.py loads into a database. Together the files hold every event
kind; test_offline_replay.py checks that.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from durable import RunInfo, Runtime, WorkflowDef
from durable.store import MEMORY_URL
from durable.store.memory import MemoryStore

from . import workflows as w

HERE = Path(__file__).resolve().parent
SCHEMA = "record_histories"


async def _until(rt: Runtime, run_id: str, check: Callable[[RunInfo], bool]) -> RunInfo:
    for _ in range(500):
        info = await rt.get_run(run_id)
        if check(info):
            return info
        await asyncio.sleep(0.02)
    raise TimeoutError(f"run {run_id} never reached the expected state")


def _has(kind: str, name: str | None = None) -> Callable[[RunInfo], bool]:
    return lambda info: any(
        e.kind == kind and (name is None or e.name == name) for e in info.history
    )


def _suspended(info: RunInfo) -> bool:
    return info.status == "suspended"


async def _save(rt: Runtime, run_id: str, name: str) -> None:
    doc = await rt.export_run(run_id)
    (HERE / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")


async def _legacy_order(rt: Runtime) -> None:
    h = await rt.trigger(w.recorded_order, {"order_id": 7, "amount": 50})
    await _until(rt, h.run_id, _has("signal_waiting"))
    await rt.signal(h.run_id, "review", {"ok": True})
    output = await h.result(timeout=30)
    await _save(rt, h.run_id, "order")
    info = await rt.export_run(h.run_id)
    head: dict[str, Any] = {
        "input": {"order_id": 7, "amount": 50},
        "output": output,
        "workflow": "recorded_order",
        "version": "1",
    }
    lines = [head] + [
        {k: e[k] for k in ("seq", "pos", "kind", "name", "payload", "created_at")}
        for e in info["events"]
    ]
    (HERE / "order_v1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


async def _record(rt: Runtime) -> None:
    await _legacy_order(rt)

    h = await rt.trigger(w.retrying, "charge")
    await h.result(timeout=30)
    await _save(rt, h.run_id, "retrying")

    h = await rt.trigger(w.failing, None)
    await asyncio.gather(h.result(timeout=30), return_exceptions=True)
    await _save(rt, h.run_id, "failing")

    h = await rt.trigger(w.waits, None)
    await _until(rt, h.run_id, _has("signal_waiting", "go"))
    await rt.signal(h.run_id, "go", {"n": 1})
    await h.result(timeout=30)
    await _save(rt, h.run_id, "waits")

    h = await rt.trigger(w.hooks, None)
    info = await _until(rt, h.run_id, _has("hook_waiting", "approve"))
    token = next(e.payload for e in info.history if e.kind == "hook_created")
    await rt.execute_hook(token, {"approved": True})
    await h.result(timeout=30)
    await _save(rt, h.run_id, "hooks")

    h = await rt.trigger(w.family, 21)
    info = await _until(rt, h.run_id, _has("child_started", "child_wait"))
    waiting = next(c for c in await rt.get_child_runs(h.run_id) if c.workflow == "child_wait")
    await _until(rt, waiting.run_id, _suspended)
    await rt.cancel(waiting.run_id)
    await h.result(timeout=30)
    await _save(rt, h.run_id, "family")
    for child in await rt.get_child_runs(h.run_id):
        await _save(rt, child.run_id, child.workflow)

    h = await rt.trigger(w.fan_out, 3)
    await h.result(timeout=30)
    await _save(rt, h.run_id, "fan_out")

    h = await rt.trigger(w.recorded_values, None)
    await h.result(timeout=30)
    await _save(rt, h.run_id, "recorded_values")

    h = await rt.trigger(w.cancellable, None)
    await _until(rt, h.run_id, _suspended)
    await rt.cancel(h.run_id)
    await _save(rt, h.run_id, "cancelled")


async def _record_parked(runtime: Callable[[list[WorkflowDef]], Runtime]) -> None:
    """`drifting` suspends on its signal; a worker with changed code then parks it."""
    async with runtime([w.drifting]) as rt:
        h = await rt.trigger(w.drifting, None)
        await _until(rt, h.run_id, _suspended)
    async with runtime([w.drifting_changed]) as rt:
        await rt.signal(h.run_id, "go")
        await _until(rt, h.run_id, lambda i: i.status == "failed")
        await _save(rt, h.run_id, "parked")


async def _fresh_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        await conn.close()


async def main() -> None:
    dsn = os.environ["DURABLE_DSN"]
    # Every runtime of one recording shares its data (the parked run needs a restart).
    if dsn == MEMORY_URL:
        store = MemoryStore()

        def runtime(workflows: list[WorkflowDef]) -> Runtime:
            return Runtime(store=store, workflows=workflows)
    else:
        await _fresh_schema(dsn)

        def runtime(workflows: list[WorkflowDef]) -> Runtime:
            return Runtime(dsn, schema=SCHEMA, workflows=workflows)

    async with runtime(w.WORKFLOWS) as rt:
        await _record(rt)
    await _record_parked(runtime)


if __name__ == "__main__":
    asyncio.run(main())
