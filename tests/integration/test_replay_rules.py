"""Replay rules end to end on real PostgreSQL: logging after resumed waits, limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from durable import Context, RunNotFound, WorkflowFailed, workflow

from .conftest import MakeRuntime


async def suspended_on(rt: Any, run_id: str, kind: str) -> Any:
    """Wait until the run is suspended with an event of `kind` in its history."""
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(RunNotFound):
                info = await rt.get_run(run_id)
                if info.status == "suspended" and any(e.kind == kind for e in info.history):
                    return info
            await asyncio.sleep(0.02)


@workflow
async def held_child(ctx: Context, _: Any) -> str:
    await ctx.wait_for_signal("release")
    return "child done"


@workflow
async def logs_after_waits(ctx: Context, _: Any) -> str:
    ctx.logger.info("begin")
    await ctx.sleep("nap", "50ms")
    ctx.logger.info("after sleep")
    await ctx.wait_for_signal("go")
    ctx.logger.info("after signal")
    hook = await ctx.create_hook("approve")
    await hook.wait()
    ctx.logger.info("after hook")
    child = await ctx.start_child(held_child, None, run_id="logs-child")
    await child.result()
    ctx.logger.info("after child")
    return "ok"


async def test_logger_speaks_after_a_replayed_run_resumes_an_open_wait(
    make_rt: MakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    # sticky_cache=0: every wake-up rebuilds the run by replay, and each wait it resumes
    # is already open in history. The lines after each wait were never printed before,
    # so each must be printed exactly once (the old engine dropped them all).
    caplog.set_level(logging.INFO, logger="durable.workflow")
    async with make_rt(logs_after_waits, held_child, sticky_cache=0) as rt:
        h = await rt.trigger(logs_after_waits, None)
        await suspended_on(rt, h.run_id, "signal_waiting")
        await rt.signal(h.run_id, "go")
        info = await suspended_on(rt, h.run_id, "hook_waiting")
        token = next(e.payload for e in info.history if e.kind == "hook_created")
        await rt.execute_hook(token, {"ok": True})
        await suspended_on(rt, h.run_id, "child_waiting")
        await suspended_on(rt, "logs-child", "signal_waiting")
        await rt.signal("logs-child", "release")
        assert await h.result(timeout=10) == "ok"
    lines = [r.getMessage() for r in caplog.records if r.name == "durable.workflow"]
    for what in ("begin", "after sleep", "after signal", "after hook", "after child"):
        assert sum(line.endswith(f"] {what}") for line in lines) == 1, (what, lines)


async def test_max_events_stops_before_running_one_body_too_many(make_rt: MakeRuntime) -> None:
    bodies: list[int] = []

    @workflow(max_events=10)
    async def eleven(ctx: Context, _: Any) -> None:
        for i in range(11):
            await ctx.step(f"s{i}", bodies.append, i)

    async with make_rt(eleven) as rt:
        h = await rt.trigger(eleven, None)
        with pytest.raises(WorkflowFailed, match="max_events exceeded"):
            await h.result(timeout=10)
        info = await rt.get_run(h.run_id)
    assert bodies == list(range(10)), "the 11th step body ran although it could not be recorded"
    assert [e.kind for e in info.history] == ["step_completed"] * 10 + ["run_failed"]


async def test_max_events_counts_concurrent_attempts(make_rt: MakeRuntime) -> None:
    bodies: list[int] = []

    async def body(i: int) -> None:
        bodies.append(i)

    # Five attempts in flight at once, room for three events: only three bodies start.
    @workflow(max_events=3)
    async def fan(ctx: Context, _: Any) -> None:
        await ctx.parallel(ctx.step(f"s{i}", body, i) for i in range(5))

    async with make_rt(fan) as rt:
        h = await rt.trigger(fan, None)
        with pytest.raises(WorkflowFailed, match="max_events exceeded"):
            await h.result(timeout=10)
    assert sorted(bodies) == [0, 1, 2]
