"""Cancel cleanup for every run: a cancelled run whose coroutine is in no process's
memory is replayed by a worker, gets WorkflowCancelled where it waited, and its
`try/finally` cleanup steps run once, recorded, within `cancel_grace`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable import Context, WorkflowCancelled, workflow

from .conftest import MakeRuntime, wait_status

CLEANED: list[str] = []
SEEN: list[str] = []


@workflow(name="reserving", version="1")
async def reserving(ctx: Context, item: str) -> str:
    await ctx.step("reserve", lambda: f"reserved {item}")
    try:
        await ctx.wait_for_signal("confirm")
        return "confirmed"
    except WorkflowCancelled:
        SEEN.append("WorkflowCancelled")
        raise
    finally:
        await ctx.step("release", lambda: CLEANED.append(item))


async def wait_cleanup(rt: Any, run_id: str, timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            info = await rt.get_run(run_id)
            if info.history and info.history[-1].kind == "cleanup_finished":
                return info
            await asyncio.sleep(0.02)


async def test_cancel_of_suspended_run_in_fresh_process_runs_cleanup_once(
    make_rt: MakeRuntime,
) -> None:
    CLEANED.clear()
    SEEN.clear()
    async with make_rt(reserving) as rt:
        h = await rt.trigger(reserving, "seat-1")
        await wait_status(rt, h.run_id, "suspended")
    # A fresh process: the run's coroutine is in no process's memory.
    async with make_rt(reserving, worker=False) as client:
        await client.cancel(h.run_id)
        # Cancel keeps its contract: the run reads cancelled at once.
        assert (await client.get_run(h.run_id)).status == "cancelled"
        with pytest.raises(WorkflowCancelled):
            await client.handle(h.run_id).result(timeout=5)
    assert CLEANED == []  # no worker yet
    async with make_rt(reserving) as rt:
        info = await wait_cleanup(rt, h.run_id)
    assert CLEANED == ["seat-1"]
    assert SEEN == ["WorkflowCancelled"]
    assert info.status == "cancelled"
    assert [(e.kind, e.name) for e in info.history] == [
        ("step_completed", "reserve"),
        ("signal_waiting", "confirm"),
        ("run_cancelled", ""),
        ("step_completed", "release"),
        ("cleanup_finished", ""),
    ]
    assert info.history[-1].payload == "completed"
    # Nothing runs it again: another worker start finds no cleanup owed.
    async with make_rt(reserving) as rt:
        assert await rt.sweep() == 0
    assert CLEANED == ["seat-1"]


async def test_cancel_without_sticky_cache_runs_cleanup_in_same_process(
    make_rt: MakeRuntime,
) -> None:
    CLEANED.clear()
    async with make_rt(reserving, sticky_cache=0) as rt:
        h = await rt.trigger(reserving, "seat-2")
        await wait_status(rt, h.run_id, "suspended")
        await rt.cancel(h.run_id)
        assert await h.status() == "cancelled"
        await wait_cleanup(rt, h.run_id)
    assert CLEANED == ["seat-2"]


async def test_cancel_of_sticky_run_runs_cleanup_once(make_rt: MakeRuntime) -> None:
    CLEANED.clear()
    async with make_rt(reserving) as rt:  # the suspended coroutine stays in memory
        h = await rt.trigger(reserving, "seat-3")
        await wait_status(rt, h.run_id, "suspended")
        await rt.cancel(h.run_id)
        await wait_cleanup(rt, h.run_id)
        await asyncio.sleep(0.2)  # room for a (wrong) second cleanup to show
    assert CLEANED == ["seat-3"]


async def test_cleanup_is_bounded_by_cancel_grace(make_rt: MakeRuntime) -> None:
    started = asyncio.Event()

    async def slow_release() -> None:
        started.set()
        await asyncio.sleep(30)

    @workflow(name="slow_cleanup", version="1")
    async def slow_cleanup(ctx: Context, _: Any) -> None:
        try:
            await ctx.sleep("wait", "1h")
        finally:
            await ctx.step("release", slow_release)

    async with make_rt(slow_cleanup, cancel_grace="300ms") as rt:
        h = await rt.trigger(slow_cleanup, None)
        await wait_status(rt, h.run_id, "suspended")
        await rt.cancel(h.run_id)
        info = await wait_cleanup(rt, h.run_id)
    assert started.is_set()
    assert info.status == "cancelled"
    assert info.history[-1].payload == "cancel_grace expired"
    assert "step_completed" not in [e.kind for e in info.history]


async def test_cancelled_run_with_no_worker_stays_cancelled(make_rt: MakeRuntime) -> None:
    @workflow(name="orphan", version="1")
    async def orphan(ctx: Context, _: Any) -> None:
        try:
            await ctx.wait_for_signal("never")
        finally:
            await ctx.step("release", lambda: None)

    async with make_rt(orphan) as rt:
        h = await rt.trigger(orphan, None)
        await wait_status(rt, h.run_id, "suspended")
    async with make_rt(worker=False, cancel_grace="100ms") as client:
        await client.cancel(h.run_id)
        await asyncio.sleep(0.2)  # the grace passes with no worker for `orphan`
    async with make_rt(orphan) as rt:
        assert await rt.sweep() == 0  # the cleanup's grace is over: nothing claims it
        info = await rt.get_run(h.run_id)
    assert info.status == "cancelled"
    assert [e.kind for e in info.history][-1] == "run_cancelled"


async def test_cleanup_in_gather_and_children(make_rt: MakeRuntime) -> None:
    CLEANED.clear()

    @workflow(name="fan", version="1")
    async def fan(ctx: Context, _: Any) -> None:
        try:
            await ctx.parallel(
                [ctx.sleep("a", "1h"), ctx.wait_for_signal("b"), ctx.child(reserving, "kid")]
            )
        finally:
            await ctx.step("fan_release", lambda: CLEANED.append("fan"))

    async with make_rt(fan, reserving, sticky_cache=0) as rt:
        h = await rt.trigger(fan, None)
        await wait_status(rt, h.run_id, "suspended")
        kid = (await rt.get_child_runs(h.run_id))[0]
        await wait_status(rt, kid.run_id, "suspended")
        await rt.cancel(h.run_id)
        await wait_cleanup(rt, h.run_id)
        await wait_cleanup(rt, kid.run_id)
    assert sorted(CLEANED) == ["fan", "kid"]
