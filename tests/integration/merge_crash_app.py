"""A worker process that dies between a step's body and the commit of its record:
`python -m tests.integration.merge_crash_app DSN SCHEMA LEASE KILL`.

The workflow's code after the step kills the process (KILL=1) before its next command:
the step's record is still kept back for the commit of the run's end (see
RunExecution.defer), so it is lost with the process and the next worker re-runs the body.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import asyncpg

from durable import Context, Runtime, workflow


async def side_effect(dsn: str, schema: str, run_id: str) -> str:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute("INSERT INTO side_effects (run_id) VALUES ($1)", run_id)
    finally:
        await conn.close()
    return "done"


@workflow(name="dies_after_body")
async def dies_after_body(ctx: Context, inp: Any) -> str:
    value = await ctx.step("effect", side_effect, inp["dsn"], inp["schema"], ctx.run_id)
    if os.environ.get("MERGE_CRASH_KILL") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return str(value)


async def main(dsn: str, schema: str, lease: str) -> None:
    async with Runtime(
        dsn, schema=schema, workflows=[dies_after_body], lease=lease, poll_interval="100ms"
    ):
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    os.environ["MERGE_CRASH_KILL"] = sys.argv[4]
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
