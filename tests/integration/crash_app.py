"""A worker process for crash tests: `python -m tests.integration.crash_app DSN SCHEMA LEASE`.

Each step records its side effect in a table, so the test can count re-executions.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import asyncpg

from durable import Context, Runtime, workflow

STEPS = 6


async def side_effect(dsn: str, schema: str, run_id: str, step: int) -> int:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute("INSERT INTO side_effects (run_id, step) VALUES ($1, $2)", run_id, step)
    finally:
        await conn.close()
    await asyncio.sleep(0.25)
    return step * 10


@workflow(name="crashy")
async def crashy(ctx: Context, inp: Any) -> list[int]:
    results = []
    for i in range(STEPS):
        results.append(
            await ctx.step(f"step-{i}", side_effect, inp["dsn"], inp["schema"], ctx.run_id, i)
        )
    return results


async def main(dsn: str, schema: str, lease: str) -> None:
    async with Runtime(dsn, schema=schema, workflows=[crashy], lease=lease, poll_interval="100ms"):
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
