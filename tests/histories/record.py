"""Record the history of `recorded_order` into order_v1.jsonl (run once, by hand).

DURABLE_DSN=postgresql://postgres@127.0.0.1:5432/postgres python -m tests.histories.record
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from durable import Runtime

from .workflows import recorded_order

HERE = Path(__file__).resolve().parent


async def main() -> None:
    dsn = os.environ["DURABLE_DSN"]
    async with Runtime(dsn, schema="record_histories", workflows=[recorded_order]) as rt:
        await rt.store.pool.execute("TRUNCATE runs, events, inbox, hooks")
        h = await rt.trigger(recorded_order, {"order_id": 7, "amount": 50})
        await rt.signal(h.run_id, "review", {"ok": True})
        output = await h.result(timeout=30)
        rows = await rt.store.pool.fetch(
            "SELECT seq, pos, kind, name, payload, created_at FROM events"
            " WHERE run_id = $1 ORDER BY seq",
            h.run_id,
        )
    lines = [
        {
            "input": {"order_id": 7, "amount": 50},
            "output": output,
            "workflow": "recorded_order",
            "version": "1",
        }
    ] + [
        {
            "seq": r["seq"],
            "pos": r["pos"],
            "kind": r["kind"],
            "name": r["name"],
            "payload": None if r["payload"] is None else r["payload"].hex(),
            "created_at": r["created_at"].isoformat(),
        }
        for r in rows
    ]
    (HERE / "order_v1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


if __name__ == "__main__":
    asyncio.run(main())
