"""`ctx.continue_as_new`: bounded histories over long loops, the chain followed by
`handle.result()`, `get_run` and the parent of a child; schedules keep firing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable import Context, Schedule, WorkflowCancelled, workflow
from durable.store import MEMORY_URL

from .conftest import MakeRuntime

BODIES: list[int] = []


@workflow(name="counter", version="1")
async def counter(ctx: Context, state: dict[str, int]) -> dict[str, int]:
    i, total = state["i"], state["total"]
    if i >= state["n"]:
        return {"i": i, "total": total}
    step = await ctx.step("add", lambda: i)
    await ctx.continue_as_new({"i": i + 1, "total": total + step, "n": state["n"]})
    raise AssertionError("continue_as_new returned")  # never reached


async def run_loop(make_rt: MakeRuntime, n: int, timeout: float = 240) -> None:
    async with make_rt(counter, sticky_cache=0) as rt:
        first = await rt.trigger(counter, {"i": 0, "total": 0, "n": n})
        # The first handle follows the whole chain to the last run's result.
        assert await first.result(timeout=timeout) == {"i": n, "total": n * (n - 1) // 2}
        info = await rt.get_run(first.run_id)
        assert info.status == "completed"
        assert info.output is None
        assert info.continued_as is not None
        assert [e.kind for e in info.history] == ["step_completed", "run_continued"]
        assert info.history[-1].payload == info.continued_as
        second = await rt.get_run(info.continued_as)
        assert second.continued_from == first.run_id
        # Every run's history stays bounded, whatever the number of iterations.
        runs = await rt.list_runs(workflow="counter", limit=n + 10)
        assert len(runs) == n + 1
        for r in runs[:: max(1, n // 50)]:
            assert len((await rt.get_run(r.run_id)).history) <= 2
        last = runs[0]
        assert last.continued_as is None
        assert last.output == {"i": n, "total": n * (n - 1) // 2}


async def test_continue_as_new_loop_keeps_histories_bounded(
    make_rt: MakeRuntime, store_dsn: str
) -> None:
    # 10,000 on the memory store; 1,000 on PostgreSQL in `make test` (the 10,000 run on
    # PostgreSQL is the `faults`-marked test below).
    await run_loop(make_rt, 10_000 if store_dsn == MEMORY_URL else 1_000)


@pytest.mark.faults
@pytest.mark.postgres_only
async def test_continue_as_new_ten_thousand_on_postgres(make_rt: MakeRuntime) -> None:
    await run_loop(make_rt, 10_000, timeout=1800)


@workflow(name="looper", version="1")
async def looper(ctx: Context, n: int) -> str:
    await ctx.step("work", lambda: BODIES.append(n))
    if n < 3:
        await ctx.continue_as_new(n + 1)
    return f"done after {n}"


@workflow(name="looper_parent", version="1")
async def looper_parent(ctx: Context, _: Any) -> str:
    return str(await ctx.child(looper, 0))


async def test_child_that_continues_as_new_gives_parent_the_final_result(
    make_rt: MakeRuntime,
) -> None:
    BODIES.clear()
    async with make_rt(looper, looper_parent) as rt:
        h = await rt.trigger(looper_parent, None)
        assert await h.result(timeout=20) == "done after 3"
        children = await rt.get_child_runs(h.run_id)
    # The chain's runs all belong to the parent (a cancel of the parent reaches them).
    assert len(children) == 4
    assert BODIES == [0, 1, 2, 3]


async def test_continue_as_new_with_sticky_runs_and_input_checks(make_rt: MakeRuntime) -> None:
    @workflow(schema=int)
    async def typed(ctx: Context, n: int) -> int:
        if n == 0:
            await ctx.continue_as_new("not an int")
        return n

    async with make_rt(typed) as rt:
        h = await rt.trigger(typed, 0)
        with pytest.raises(Exception, match="ValidationError"):
            await h.result(timeout=10)
        info = await rt.get_run(h.run_id)
        assert info.status == "failed"
        assert info.continued_as is None


async def test_cancelled_chain_reports_the_last_run(make_rt: MakeRuntime) -> None:
    @workflow(name="waits_then_loops", version="1")
    async def waits_then_loops(ctx: Context, n: int) -> None:
        if n == 0:
            await ctx.continue_as_new(1)
        await ctx.wait_for_signal("never")

    async with make_rt(waits_then_loops) as rt:
        h = await rt.trigger(waits_then_loops, 0)
        async with asyncio.timeout(10):
            while (info := await rt.get_run(h.run_id)).continued_as is None:
                await asyncio.sleep(0.02)
        assert info.continued_as is not None
        await rt.cancel(info.continued_as)
        with pytest.raises(WorkflowCancelled) as caught:
            await h.result(timeout=10)
        assert caught.value.run_id == info.continued_as


SCHEDULED: list[int] = []


@workflow(name="scheduled_loop", version="1", schedules=[Schedule("* * * * * *", input=0)])
async def scheduled_loop(ctx: Context, n: int) -> int:
    await ctx.step("tick", lambda: SCHEDULED.append(n))
    if n < 2:
        await ctx.continue_as_new(n + 1)
    return n


async def test_scheduled_run_continues_as_new_and_the_schedule_keeps_firing(
    make_rt: MakeRuntime,
) -> None:
    SCHEDULED.clear()
    async with make_rt(scheduled_loop) as rt:
        async with asyncio.timeout(15):
            # Two ticks, each a chain of three runs (0 -> 1 -> 2).
            while SCHEDULED.count(2) < 2:
                await asyncio.sleep(0.05)
        runs = await rt.list_runs(workflow="scheduled_loop", limit=100)
    starts = [r for r in runs if r.continued_from is None]
    assert len(starts) >= 2
    done = [r for r in runs if r.status == "completed" and r.continued_as is None]
    assert all(r.output == 2 for r in done)
