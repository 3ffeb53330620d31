"""A worker process for the multi-process flow tests.

`python -m tests.flow.worker_app DSN SCHEMA LEASE` runs every workflow below until
SIGTERM; it prints "ready" once it executes runs.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from durable import Context, Queue, Runtime, WorkflowDef, workflow


async def pause(ms: int) -> int:
    await asyncio.sleep(ms / 1000)
    return ms


def _queued(name: str, queue: Queue, ms: int) -> WorkflowDef:
    async def body(ctx: Context, inp: Any) -> Any:
        await ctx.step("work", pause, ms)
        return inp

    body.__name__ = name
    return workflow(name=name, queue=queue)(body)


PER_KEY = _queued("per_key", Queue("per-key", per_key_concurrency=1), 10)
FIVE = _queued("five", Queue("five", concurrency=5), 20)
RATED = _queued("rated", Queue("rated", rate_limit=(20, "1s")), 1)
LANES = _queued("lanes", Queue("lanes", concurrency=1), 5)
SYNC = _queued("sync", Queue("sync", concurrency=10), 1)
HOLD = _queued("hold", Queue("hold", concurrency=2), 700)
WORKFLOWS = [PER_KEY, FIVE, RATED, LANES, SYNC, HOLD]


async def main(dsn: str, schema: str, lease: str) -> None:
    async with Runtime(
        dsn,
        schema=schema,
        workflows=WORKFLOWS,
        lease=lease,
        poll_interval="50ms",
        concurrency=50,
    ):
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
