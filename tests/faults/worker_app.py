"""A worker process for the fault-injection suite.

    python -m tests.faults.worker_app DSN SCHEMA [--lease 2s] [--concurrency 20]
        [--poll 200ms] [--sticky 10000] [--no-listen]

Prints ``ready <pid>`` once its Runtime is up. On SIGUSR1 it prints one JSON line of
statistics (RSS from /proc/self/statm, sticky-cache and active sizes, step-body call
counts); on SIGTERM it shuts down gracefully. Step bodies of the ``chain`` workflow
insert one row per execution into the ``side_effects`` table of SCHEMA *before* they
finish, so the test can count re-executions (the table is the ground truth).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from typing import Any

import asyncpg

from durable import Context, Runtime, workflow

PID = os.getpid()
STATS: dict[str, int] = {"effects": 0, "prep": 0, "done": 0}
_POOL: asyncpg.Pool | None = None


async def effect(run_id: str, step: int, ms: int) -> dict[str, int]:
    """The side effect: one durable row per execution, then some work time."""
    assert _POOL is not None
    await _POOL.execute(
        "INSERT INTO side_effects (run_id, step, pid) VALUES ($1, $2, $3)", run_id, step, PID
    )
    STATS["effects"] += 1
    await asyncio.sleep(ms / 1000)
    return {"step": step, "pid": PID}


@workflow(name="chain")
async def chain(ctx: Context, inp: Any) -> list[Any]:
    """`steps` sequential steps, each a side effect taking `ms` milliseconds."""
    out = []
    for i in range(inp["steps"]):
        out.append(await ctx.step(f"s{i}", effect, ctx.run_id, i, inp["ms"]))
    return out


async def counted(kind: str) -> str:
    STATS[kind] += 1
    return kind


@workflow(name="parked")
async def parked(ctx: Context, inp: Any) -> list[Any]:
    """One step, a signal wait (the run suspends here), one more step."""
    first = await ctx.step("prep", counted, "prep")
    got = await ctx.wait_for_signal("go")
    last = await ctx.step("done", counted, "done")
    return [first, got, last]


async def blocking_effect(run_id: str, seconds: float) -> int:
    """An async step body that holds the event loop: one ledger row, then time.sleep."""
    assert _POOL is not None
    await _POOL.execute(
        "INSERT INTO side_effects (run_id, step, pid) VALUES ($1, 0, $2)", run_id, PID
    )
    STATS["effects"] += 1
    time.sleep(seconds)  # noqa: ASYNC251 - the fault under test: a step blocking the loop
    return PID


@workflow(name="blocking")
async def blocking(ctx: Context, inp: Any) -> Any:
    """One async step that blocks the event loop for `seconds` (past the lease)."""
    return await ctx.step("block", blocking_effect, ctx.run_id, inp["seconds"])


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def main(argv: list[str]) -> None:
    global _POOL
    p = argparse.ArgumentParser()
    p.add_argument("dsn")
    p.add_argument("schema")
    p.add_argument("--lease", default="2s")
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--poll", default="200ms")
    p.add_argument("--sticky", type=int, default=10_000)
    p.add_argument("--no-listen", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format=f"%(asctime)s pid={PID} %(levelname)s %(name)s: %(message)s",
    )
    rt = Runtime(
        args.dsn,
        schema=args.schema,
        workflows=[chain, parked, blocking],
        lease=args.lease,
        concurrency=args.concurrency,
        poll_interval=args.poll,
        sticky_cache=args.sticky,
        listen=not args.no_listen,
        shutdown_grace="2s",
    )
    _POOL = await asyncpg.create_pool(
        args.dsn, min_size=1, max_size=10, server_settings={"search_path": args.schema}
    )
    async with rt:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def dump() -> None:
            ex = rt._executor
            stats = {
                "pid": PID,
                "rss": rss_bytes(),
                "sticky": len(ex.sticky) if ex else -1,
                "active": len(ex.active) if ex else -1,
                "tasks": len(asyncio.all_tasks()),
                "blocked_episodes": getattr(getattr(ex, "watchdog", None), "episodes", -1),
                "watchdog_renewals": getattr(getattr(ex, "watchdog", None), "renewals", -1),
                **STATS,
            }
            print("stats " + json.dumps(stats), flush=True)

        loop.add_signal_handler(signal.SIGUSR1, dump)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print(f"ready {PID}", flush=True)
        await stop.wait()
    await _POOL.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
