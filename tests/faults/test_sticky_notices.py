"""Issue 16, item 8, long form: runs finished by another worker leave the sticky cache.

Worker process A holds N runs suspended on a signal (each coroutine in its sticky
cache). A is SIGSTOPped, worker B starts, every run is signalled and B finishes them
all. A is SIGCONTed and reads the `d:` notices queued on its LISTEN connection: its
cache must empty (before: 221 of 300 finished runs stayed cached, about 44 MB of
locals, until LRU eviction). The short forms are in tests/integration/test_sticky_cache.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import pytest

from .conftest import MakeRuntime
from .harness import Worker, check_histories, report, wait_for, workers_cleanup
from .worker_app import parked


@pytest.mark.faults
async def test_runs_finished_elsewhere_leave_the_sticky_cache(
    make_rt: MakeRuntime, dsn: str, schema: str, db: Any, log_dir: Any
) -> None:
    n = 300
    args = ("--concurrency", "400", "--lease", "30s", "--poll", "200ms")
    async with make_rt(parked, worker=False, pool_size=10) as client:
        with workers_cleanup() as started:
            a = Worker(dsn, schema, log_dir, *args)
            started.append(a)
            await a.wait_ready()
            ids: list[str] = []
            for _ in range(0, n, 50):
                hs = await asyncio.gather(*(client.trigger(parked, None) for _ in range(50)))
                ids += [h.run_id for h in hs]

            async def count(status: str) -> int:
                return int(
                    await db.fetchval(
                        "SELECT count(*) FROM runs WHERE id = ANY($1::text[]) AND status = $2",
                        ids,
                        status,
                    )
                )

            async def all_in(status: str) -> bool:
                return await count(status) == n

            await wait_for(lambda: all_in("suspended"), timeout=60, interval=0.2, what="held")
            held = await a.stats()
            a.proc.send_signal(signal.SIGSTOP)
            b = Worker(dsn, schema, log_dir, *args)
            started.append(b)
            await b.wait_ready()
            for i in range(0, n, 50):
                await asyncio.gather(*(client.signal(r, "go", 1) for r in ids[i : i + 50]))
            await wait_for(lambda: all_in("completed"), timeout=60, interval=0.2, what="done")
            a.proc.send_signal(signal.SIGCONT)

            async def emptied() -> bool:
                return bool((await a.stats())["sticky"] == 0)

            with contextlib.suppress(TimeoutError):
                await wait_for(emptied, timeout=10, interval=0.2, what="A's cache emptied")
            after = await a.stats()
            done_by_b = (await b.stats())["done"]
    await check_histories(db)
    report(
        "sticky_finished_elsewhere",
        runs=n,
        cached_on_a_held=held["sticky"],
        cached_on_a_after=after["sticky"],
        rss_a_held_mb=round(held["rss"] / 2**20, 1),
        rss_a_after_mb=round(after["rss"] / 2**20, 1),
        finished_by_b=done_by_b,
    )
    assert held["sticky"] == n
    assert done_by_b == n
    assert after["sticky"] == 0, f"A still caches {after['sticky']} runs B finished"
