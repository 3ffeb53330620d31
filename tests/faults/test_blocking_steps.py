"""Issue 16, item 2: an `async def` step that holds the event loop past the lease.

Blocking the loop stops the heartbeat task too, so the lease lapses mid-step. Before
the fix, the worker's own claim loop re-claimed the run it was still executing on its
next tick (2-4 executions on one worker), and a second worker took it over while the
first was blocked and then blocked in turn (11 executions, run unfinished after 54 s).

1. Short, in `make test`: one worker, a 1 s lease and a step doing time.sleep(2.5):
   the body runs exactly once, the run is claimed once, and the watchdog logs one
   WARNING naming the step and its run. On PostgreSQL and on the memory store.
2. Short: heartbeats fail (their commits error out) for longer than the lease: the
   worker still never re-claims the run it is executing (`_executing_at_risk`).
3. Long (`faults`): two worker processes, a 2 s lease, steps blocking for 6 s (the
   issue's figures): each body runs once and every run completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import pytest

from durable import Context, Runtime, workflow

from .conftest import MakeRuntime
from .harness import Worker, check_histories, create_side_effects, report, wait_for, workers_cleanup
from .worker_app import blocking

CALLS: list[float] = []


async def hog(seconds: float) -> str:
    CALLS.append(time.monotonic())
    time.sleep(seconds)  # noqa: ASYNC251 - the fault under test: it blocks the loop
    return "done"


@workflow(name="hogging")
async def hogging(ctx: Context, seconds: float) -> Any:
    return [await ctx.step("hog", hog, seconds), await ctx.step("after", lambda: "after")]


@pytest.mark.parametrize("store", ["postgres", "memory"])
async def test_step_blocking_the_loop_runs_once_and_is_named(
    make_rt: MakeRuntime, db: Any, store: str, caplog: pytest.LogCaptureFixture
) -> None:
    CALLS.clear()
    caplog.set_level(logging.WARNING, logger="durable.worker")
    lease = 1.0
    if store == "memory":
        rt = Runtime("memory://", workflows=[hogging], lease="1s", poll_interval="100ms")
    else:
        rt = make_rt(hogging, lease="1s")
    async with rt:
        h = await rt.trigger(hogging, 2.5 * lease)
        assert await h.result(timeout=30) == ["done", "after"]
    fence = None
    if store == "postgres":
        fence = await db.fetchval("SELECT fence FROM runs WHERE id = $1", h.run_id)
        await check_histories(db)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "durable.worker" and "event loop blocked" in r.getMessage()
    ]
    report(
        f"blocking_step_one_worker[{store}]",
        lease_s=lease,
        blocks_s=2.5 * lease,
        executions=len(CALLS),
        fence=fence,
        warnings=len(warnings),
    )
    assert len(CALLS) == 1, f"the blocking step ran {len(CALLS)} times on one worker"
    assert len(warnings) == 1, warnings
    assert "step 'hog'" in warnings[0] and h.run_id in warnings[0], warnings[0]
    assert "test_blocking_steps.py" in warnings[0], warnings[0]


async def test_worker_never_reclaims_a_run_it_is_executing(make_rt: MakeRuntime, db: Any) -> None:
    """Heartbeats fail for longer than the lease while a step is under way (their
    commits error out): the lease lapses, but this worker's claim loop must not take
    the run back from itself (before: it re-claimed it, fence 2, and ran the step a
    second time). When heartbeats work again the run completes, claimed once."""
    gate = asyncio.Event()
    calls: list[int] = []

    async def contested() -> int:
        calls.append(len(calls) + 1)
        await gate.wait()
        return len(calls)

    @workflow(name="contested_self")
    async def wf(ctx: Context, _: Any) -> Any:
        return await ctx.step("s", contested)

    async with make_rt(wf, lease="1s") as a:
        committer = a.executor.committer
        heartbeat = committer.heartbeat

        async def failing(extends: Any) -> set[str]:
            raise ConnectionError("injected: heartbeat commit failed")

        h = await a.trigger(wf, None)

        async def in_step() -> bool:
            return len(calls) >= 1

        await wait_for(in_step, timeout=10, what="the execution in its step")
        committer.heartbeat = failing  # type: ignore[method-assign]
        # 2.5 leases without a renewal; the claim loop ticks every 100 ms meanwhile.
        await asyncio.sleep(2.5)
        reclaimed = await db.fetchval("SELECT fence FROM runs WHERE id = $1", h.run_id)
        committer.heartbeat = heartbeat  # type: ignore[method-assign]
        gate.set()
        result = await a.handle(h.run_id).result(timeout=10)
    await check_histories(db)
    report("worker_never_reclaims_its_own_run", calls=len(calls), fence=reclaimed, result=result)
    assert (len(calls), reclaimed) == (1, 1), (
        f"step ran {len(calls)} times; fence {reclaimed}: the worker re-claimed its own run"
    )
    assert result == 1


@pytest.mark.faults
async def test_two_workers_and_steps_blocking_past_the_lease(
    dsn: str, schema: str, db: Any, log_dir: Any
) -> None:
    """The issue's setup: a 2 s lease, async steps doing time.sleep(6), two worker
    processes. Before: 11 executions for one run, unfinished after 54 s. Now the
    blocked worker's watchdog thread keeps renewing its leases: each body runs once."""
    runs = 3
    async with Runtime(dsn, schema=schema, workflows=[blocking], worker=False) as client:
        await create_side_effects(db)
        with workers_cleanup() as started:
            for _ in range(2):
                w = Worker(dsn, schema, log_dir, "--lease", "2s", "--poll", "200ms")
                started.append(w)
            for w in started:
                await w.wait_ready()
            t0 = time.monotonic()
            handles = [await client.trigger(blocking, {"seconds": 6}) for _ in range(runs)]
            finished = 0
            for h in handles:
                with contextlib.suppress(TimeoutError):
                    await h.result(timeout=max(90 - (time.monotonic() - t0), 1))
                    finished += 1
            elapsed = time.monotonic() - t0
            stats = [await w.stats() for w in started]
            logs = "".join(w.log_text() for w in started)
    executions = await db.fetchval("SELECT count(*) FROM side_effects")
    per_run = await db.fetch("SELECT run_id, count(*) AS n FROM side_effects GROUP BY run_id")
    fences = await db.fetch("SELECT fence FROM runs ORDER BY fence")
    report(
        "blocking_step_two_workers",
        runs=runs,
        finished=finished,
        lease_s=2,
        blocks_s=6,
        executions=executions,
        fences=[r["fence"] for r in fences],
        seconds=round(elapsed, 1),
        episodes=[s["blocked_episodes"] for s in stats],
        watchdog_renewals=[s["watchdog_renewals"] for s in stats],
        warnings=logs.count("event loop blocked"),
    )
    await check_histories(db)
    assert finished == runs, f"{finished} of {runs} runs finished in 90 s"
    assert executions == runs, f"{executions} executions for {runs} runs: {per_run}"
    assert "step 'block'" in logs
