"""`rt.retry(run_id)`: a failed or parked run resumes in place on the registered code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable import (
    Context,
    RetryPolicy,
    RunNotFailed,
    RunNotFound,
    WorkflowFailed,
    workflow,
)

from .conftest import MakeRuntime

ONCE = RetryPolicy(max_attempts=2, initial_interval="10ms")


async def test_retry_resumes_a_failed_run_from_the_failed_step(make_rt: MakeRuntime) -> None:
    calls: list[str] = []
    broken = {"on": True}

    def reserve(order: Any) -> str:
        calls.append("reserve")
        return "R1"

    def charge(order: Any) -> str:
        calls.append("charge")
        if broken["on"]:
            raise ValueError("card service rejects the amount")
        return "C1"

    @workflow(retry_policy=ONCE)
    async def order(ctx: Context, inp: Any) -> Any:
        r = await ctx.step("reserve", reserve, inp)
        c = await ctx.step("charge", charge, inp)
        return [r, c]

    async with make_rt(order) as rt:
        h = await rt.trigger(order, {"id": 1})
        with pytest.raises(WorkflowFailed):
            await h.result(timeout=10)
        assert calls == ["reserve", "charge", "charge"]
        broken["on"] = False  # the fix is deployed
        again = await rt.retry(h.run_id)
        assert again.run_id == h.run_id
        assert await again.result(timeout=10) == ["R1", "C1"]
        info = await rt.get_run(h.run_id)
    # reserve was not run again; charge ran once more, from a fresh first attempt.
    assert calls == ["reserve", "charge", "charge", "charge"]
    kinds = [(e.kind, e.name) for e in info.history]
    assert kinds == [
        ("step_completed", "reserve"),
        ("step_completed", "charge"),
        ("run_completed", ""),
    ]
    assert info.status == "completed" and info.error is None and info.traceback is None


async def test_retry_keeps_buffered_signals(make_rt: MakeRuntime) -> None:
    state = {"fail": True}

    def check(_: Any) -> None:
        if state["fail"]:
            raise ValueError("not yet")

    @workflow(retry_policy=RetryPolicy(max_attempts=1))
    async def approval(ctx: Context, _: Any) -> Any:
        await ctx.step("check", check, None)
        return await ctx.wait_for_signal("approve", timeout="30s")

    async with make_rt(approval) as rt:
        h = await rt.trigger(approval)
        # Signal before the run reaches its wait: it is buffered in the inbox...
        await rt.signal(h.run_id, "approve", {"by": "ann"})
        with pytest.raises(WorkflowFailed):
            await h.result(timeout=10)
        state["fail"] = False
        await rt.retry(h.run_id)
        # ...and delivered after the retry.
        assert await h.result(timeout=10) == {"by": "ann"}


async def test_retry_resumes_a_run_parked_by_non_determinism(make_rt: MakeRuntime) -> None:
    @workflow(name="flow", retry_policy=ONCE)
    async def v1(ctx: Context, _: Any) -> Any:
        a = await ctx.step("a", lambda: 1)
        await ctx.wait_for_signal("go")
        return a

    @workflow(name="flow", retry_policy=ONCE)
    async def v1_changed(ctx: Context, _: Any) -> Any:
        a = await ctx.step("a", lambda: 1)
        b = await ctx.step("b", lambda: 2)  # inserted before the wait: diverges
        await ctx.wait_for_signal("go")
        return a + b

    async with make_rt(v1, sticky_cache=0) as rt:
        h = await rt.trigger(v1)
        for _ in range(200):
            info = await rt.get_run(h.run_id)
            if info.status == "suspended":
                break
            await asyncio.sleep(0.02)
        assert info.status == "suspended"
    async with make_rt(v1_changed, worker=False) as rt:
        await rt.signal(h.run_id, "go")  # sent just before the new code parks the run
    async with make_rt(v1_changed, sticky_cache=0) as rt:
        with pytest.raises(WorkflowFailed, match="NonDeterminismError"):
            await rt.handle(h.run_id).result(timeout=10)
    async with make_rt(v1_changed, sticky_cache=0) as rt:
        await rt.retry(h.run_id)
        # Position 1 on is dropped; the new code runs live from there (the signal that
        # was buffered before it was parked is still delivered).
        assert await rt.handle(h.run_id).result(timeout=10) == 3
        info = await rt.get_run(h.run_id)
    assert [(e.kind, e.name) for e in info.history][:2] == [
        ("step_completed", "a"),
        ("step_completed", "b"),
    ]


async def test_retry_refuses_runs_that_did_not_fail(make_rt: MakeRuntime) -> None:
    @workflow
    async def ok(ctx: Context, _: Any) -> Any:
        return await ctx.wait_for_signal("go")

    async with make_rt(ok) as rt:
        with pytest.raises(RunNotFound):
            await rt.retry("no-such-run")
        h = await rt.trigger(ok)
        with pytest.raises(RunNotFailed, match="only a failed run"):
            await rt.retry(h.run_id)
        await rt.signal(h.run_id, "go", 1)
        assert await h.result(timeout=10) == 1
        with pytest.raises(RunNotFailed, match="completed"):
            await rt.retry(h.run_id)
        c = await rt.trigger(ok)
        await rt.cancel(c.run_id)
        with pytest.raises(RunNotFailed, match="cancelled"):
            await rt.retry(c.run_id)
        info = await rt.get_run(h.run_id)
        assert info.status == "completed"
