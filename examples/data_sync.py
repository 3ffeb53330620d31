"""Data sync (the Sonamu `sync_user_data` example): fetch users from an external API,
upsert them in batches, one step per batch, with a rate-limit sleep between batches.

Halfway through, the worker shuts down and a new one takes over: the run resumes from
its history, and no batch is processed twice.

    python examples/data_sync.py
"""

from __future__ import annotations

import asyncio
from collections import Counter

from durable import Context, Runtime, workflow

BATCH_SIZE = 4
TOTAL_USERS = 18


class ExternalApi:
    def fetch_users(self) -> list[dict]:
        return [
            {"id": i, "email": f"user{i}@example.com", "name": f"User {i}"}
            for i in range(1, TOTAL_USERS + 1)
        ]


class UserTable:
    """Stands in for the local database; counts upserts per batch to show exactly-once."""

    def __init__(self) -> None:
        self.rows: dict[int, dict] = {}
        self.batch_calls: Counter[int] = Counter()

    async def upsert_batch(self, index: int, users: list[dict]) -> dict:
        self.batch_calls[index] += 1
        for user in users:
            self.rows[user["id"]] = user
        await asyncio.sleep(0.01)  # the database round trip
        return {"batch": index, "processed": len(users)}


api = ExternalApi()
table = UserTable()


@workflow(name="sync_user_data", version="1")
async def sync_user_data(ctx: Context, params: dict) -> dict:
    # step.get(ExternalApi, "fetch_users") in Sonamu: a bound method is a step too,
    # named after the method ("fetch_users") unless a name is given.
    users = await ctx.step(api.fetch_users)
    batch_size = params["batch_size"]
    batches = (len(users) + batch_size - 1) // batch_size
    processed = 0
    for i in range(batches):
        chunk = users[i * batch_size : (i + 1) * batch_size]
        result = await ctx.step(f"process-batch-{i}", table.upsert_batch, i, chunk)
        processed += result["processed"]
        await ctx.emit_event("progress", {"batch": i, "processed": processed})
        if i < batches - 1:
            await ctx.sleep(f"wait-after-batch-{i}", params["pause"])  # rate limit
    return {"total_users": len(users), "batches": batches, "synced_at": ctx.now().isoformat()}


async def main(dsn: str | None = None, schema: str | None = None) -> dict:
    table.rows.clear()
    table.batch_calls.clear()
    schema = schema or "durable"
    params = {"batch_size": BATCH_SIZE, "pause": "200ms"}

    async with Runtime(dsn, workflows=[sync_user_data], schema=schema) as rt:
        handle = await rt.trigger(sync_user_data, params)
        print(f"started run {handle.run_id}")
        async with asyncio.timeout(30):
            while len(await rt.get_events(handle.run_id)) < 2:  # two batches done
                await asyncio.sleep(0.02)
        print(f"worker 1 stops after batches {sorted(table.batch_calls)}")
    # Leaving the block stopped the worker; the run waits in the database.
    print(f"status between workers: {(await _status(dsn, schema, handle.run_id))}")

    async with Runtime(dsn, workflows=[sync_user_data], schema=schema) as rt:
        result = await rt.handle(handle.run_id).result(timeout=30)
        events = await rt.get_events(handle.run_id)
    print(f"worker 2 finished the run: {result}")
    print(f"progress events: {[e.payload['processed'] for e in events]}")
    print(f"calls per batch: {dict(sorted(table.batch_calls.items()))}")
    return {
        "result": result,
        "rows": len(table.rows),
        "batch_calls": dict(table.batch_calls),
        "progress": [e.payload["processed"] for e in events],
    }


async def _status(dsn: str | None, schema: str, run_id: str) -> str:
    # A client-only runtime (worker=False) inspects and steers runs without executing any.
    async with Runtime(dsn, schema=schema, worker=False) as client:
        return str((await client.get_run(run_id)).status)


if __name__ == "__main__":
    asyncio.run(main())
