"""Memory: many suspended runs held by one worker process.

The worker (a subprocess, so its RSS is its own) runs N `parked` runs to their signal
wait. RSS is read from /proc/<pid>/statm before and after. With the default sticky cache
every suspended coroutine stays in memory (the cost per suspended run is reported and
bounded); with `sticky_cache=100` the cache never exceeds 100 entries and the evicted
runs fall back to replay when signalled -- every run completes, and no step body runs
twice (replay returns recorded results).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .conftest import MakeRuntime
from .harness import Worker, check_histories, report, wait_for, workers_cleanup
from .worker_app import parked

WARMUP = 200
SIZES = [
    pytest.param(1_000, id="short"),
    pytest.param(10_000, id="long", marks=pytest.mark.faults),
]
# Bound on RSS growth: a fixed allowance (pools, allocator arenas, the claim batch)
# plus a cost per suspended run, with margin over what was measured (~5.3 KiB per run
# with every coroutine cached, ~0.9 KiB with sticky_cache=100; docs/reliability.md).
FIXED_ALLOWANCE = 6 * 2**20
MAX_BYTES_PER_RUN = {10_000: 8 * 1024, 100: 1536}


async def _in_chunks(coros: list[Any], size: int = 200) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(coros), size):
        out.extend(await asyncio.gather(*coros[i : i + size]))
    return out


@pytest.mark.parametrize("sticky", [10_000, 100])
@pytest.mark.parametrize("n", SIZES)
async def test_suspended_runs_memory_and_bounded_sticky_cache(
    make_rt: MakeRuntime, dsn: str, schema: str, db: Any, log_dir: Any, n: int, sticky: int
) -> None:
    async with make_rt(parked, worker=False, pool_size=10) as client:
        with workers_cleanup() as started:
            w = Worker(
                dsn, schema, log_dir,
                "--concurrency", "200", "--sticky", str(sticky), "--lease", "30s", "--poll", "200ms",
            )  # fmt: skip
            started.append(w)
            await w.wait_ready()

            async def batch(count: int) -> list[str]:
                hs = await _in_chunks([client.trigger(parked, None) for _ in range(count)])
                return [h.run_id for h in hs]

            async def status_count(ids: list[str], status: str) -> int:
                return int(
                    await db.fetchval(
                        "SELECT count(*) FROM runs WHERE id = ANY($1::text[]) AND status = $2",
                        ids,
                        status,
                    )
                )

            async def settle(ids: list[str], status: str) -> None:
                async def ok() -> bool:
                    return await status_count(ids, status) == len(ids)

                await wait_for(ok, timeout=60 + len(ids) / 50, interval=0.2, what=status)

            async def signal_all(ids: list[str]) -> None:
                await _in_chunks([client.signal(r, "go", r[:8]) for r in ids])

            # Warm-up: imports, pools and allocator arenas reach their working size.
            warm = await batch(WARMUP)
            await settle(warm, "suspended")
            await signal_all(warm)
            await settle(warm, "completed")
            base = await w.stats()

            ids = await batch(n)
            most_sticky = 0

            async def all_suspended() -> bool:
                nonlocal most_sticky
                most_sticky = max(most_sticky, (await w.stats())["sticky"])
                return await status_count(ids, "suspended") == n

            await wait_for(all_suspended, timeout=60 + n / 50, interval=0.2, what="suspended")
            held = await w.stats()
            most_sticky = max(most_sticky, held["sticky"])
            await signal_all(ids)
            await settle(ids, "completed")
            end = await w.stats()
            assert w.stop() == 0
            log = w.log_text()

    assert most_sticky <= min(sticky, n + WARMUP), f"sticky cache grew to {most_sticky}"
    # Each step body ran exactly once per run, although evicted runs were replayed.
    assert end["prep"] == end["done"] == WARMUP + n, end
    outs = await db.fetch("SELECT output FROM runs WHERE status = 'completed'")
    assert len(outs) == WARMUP + n
    await check_histories(db)
    assert "Traceback" not in log, log
    growth = held["rss"] - base["rss"]
    per_run = growth / n
    report(
        "memory_suspended",
        runs=n,
        sticky_cache=sticky,
        rss_base_mb=round(base["rss"] / 2**20, 1),
        rss_held_mb=round(held["rss"] / 2**20, 1),
        rss_end_mb=round(end["rss"] / 2**20, 1),
        growth_mb=round(growth / 2**20, 1),
        bytes_per_suspended_run=int(per_run),
        sticky_max=most_sticky,
        tasks_held=held["tasks"],
    )
    assert growth <= FIXED_ALLOWANCE + n * MAX_BYTES_PER_RUN[sticky], (
        f"RSS grew {growth / 2**20:.1f} MiB for {n} suspended runs ({per_run:.0f} B each)"
    )
