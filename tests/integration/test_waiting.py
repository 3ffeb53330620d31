"""Timers, signals, hooks, children, cancellation, events and sweeps on real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durable import (
    Context,
    RunClosed,
    RunNotFound,
    WorkflowCancelled,
    WorkflowFailed,
    workflow,
)

from .conftest import MakeRuntime


async def wait_status(rt: Any, run_id: str, status: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while (await rt.get_run(run_id)).status != status:
            await asyncio.sleep(0.02)


@workflow
async def napper(ctx: Context, inp: Any) -> str:
    await ctx.step("before", lambda: 1)
    await ctx.sleep("nap", inp["for"])
    await ctx.step("after", lambda: 2)
    return "rested"


async def test_sleep_suspends_visibly_and_resumes(make_rt: MakeRuntime) -> None:
    async with make_rt(napper) as rt:
        h = await rt.trigger(napper, {"for": "600ms"})
        await wait_status(rt, h.run_id, "suspended")
        info = await rt.get_run(h.run_id)
        assert len(info.pending) == 1
        pending = info.pending[0]
        assert (pending["kind"], pending["name"]) == ("sleep", "nap")
        assert pending["until"] > datetime.now(UTC)
        assert await h.result(timeout=10) == "rested"
        info = await rt.get_run(h.run_id)
        fired = next(e for e in info.history if e.kind == "timer_fired")
        started = next(e for e in info.history if e.kind == "timer_started")
        assert fired.created_at is not None
        assert fired.created_at >= started.payload["until"]


async def test_restart_mid_sleep_then_sweep_from_a_client(make_rt: MakeRuntime) -> None:
    async with make_rt(napper) as rt:
        # 2 s: long enough that the client below opens before the timer is due even
        # on a loaded machine (500 ms was not always).
        h = await rt.trigger(napper, {"for": "2s"})
        await wait_status(rt, h.run_id, "suspended")
    # A client-only runtime (serverless style): nothing advances until sweep().
    async with make_rt(napper, worker=False) as rt:
        assert await rt.sweep() == 0  # not due yet: a sweep never fires a timer early
        assert (await rt.get_run(h.run_id)).status == "suspended"
        await asyncio.sleep(2.1)
        assert await rt.sweep() == 1
        assert await rt.handle(h.run_id).result(timeout=5) == "rested"


@pytest.mark.parametrize("bad", ["-1s", "5 parsecs", None, "soon"])
async def test_bad_durations_raise_value_error_before_recording(
    make_rt: MakeRuntime, bad: Any
) -> None:
    async with make_rt(napper) as rt:
        h = await rt.trigger(napper, {"for": bad})
        with pytest.raises(WorkflowFailed, match="invalid duration"):
            await h.result(timeout=10)
        info = await rt.get_run(h.run_id)
        assert [e.kind for e in info.history] == ["step_completed", "run_failed"]


@workflow
async def listener(ctx: Context, inp: Any) -> Any:
    got = []
    for _ in range(inp["n"]):
        got.append(await ctx.wait_for_signal("msg", timeout=inp.get("timeout")))
    return got


async def test_signals_buffered_before_wait_and_in_send_order(make_rt: MakeRuntime) -> None:
    async with make_rt(listener, worker=False) as rt:
        h = await rt.trigger(listener, {"n": 3})
        for i in range(3):
            await rt.signal(h.run_id, "msg", {"i": i})
        await rt.signal(h.run_id, "other", "ignored")
    async with make_rt(listener) as rt:
        assert await rt.handle(h.run_id).result(timeout=10) == [{"i": 0}, {"i": 1}, {"i": 2}]


async def test_signal_delivered_while_suspended_wakes_run(make_rt: MakeRuntime) -> None:
    async with make_rt(listener) as rt:
        h = await rt.trigger(listener, {"n": 2})
        await wait_status(rt, h.run_id, "suspended")
        info = await rt.get_run(h.run_id)
        assert info.pending == [{"kind": "signal", "name": "msg", "until": None}]
        await rt.signal(h.run_id, "msg", 1)
        await rt.signal(h.run_id, "msg", 2)
        assert await h.result(timeout=10) == [1, 2]


async def test_signal_timeout_returns_none(make_rt: MakeRuntime) -> None:
    async with make_rt(listener) as rt:
        h = await rt.trigger(listener, {"n": 1, "timeout": "300ms"})
        assert await h.result(timeout=10) == [None]
        info = await rt.get_run(h.run_id)
        assert "signal_timed_out" in [e.kind for e in info.history]


async def test_signal_errors(make_rt: MakeRuntime) -> None:
    @workflow
    async def quick(ctx: Context, _: Any) -> int:
        return 1

    async with make_rt(quick) as rt:
        with pytest.raises(RunNotFound, match="nope"):
            await rt.signal("nope", "x", 1)
        h = await rt.trigger(quick, None)
        await h.result(timeout=10)
        with pytest.raises(RunClosed, match="completed"):
            await rt.signal(h.run_id, "x", 1)
        with pytest.raises(RunClosed):
            await rt.cancel(h.run_id)
        with pytest.raises(RunNotFound):
            await rt.cancel("nope")


@workflow
async def approval(ctx: Context, _: Any) -> Any:
    hook = await ctx.create_hook("approve")
    await ctx.step("publish-token", lambda t: t, hook.token)
    return await hook.wait(timeout="10s")


async def test_hooks_complete_once_with_unguessable_tokens(make_rt: MakeRuntime) -> None:
    async with make_rt(approval) as rt:
        h = await rt.trigger(approval, None)
        await wait_status(rt, h.run_id, "suspended")
        info = await rt.get_run(h.run_id)
        token = next(e.payload for e in info.history if e.kind == "hook_created")
        assert isinstance(token, str) and len(token) >= 22  # >= 128 bits, URL-safe base64
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert await rt.execute_hook(token, {"ok": True}) == h.run_id
        with pytest.raises(RunClosed):
            await rt.execute_hook(token, {"ok": False})
        with pytest.raises(RunNotFound):
            await rt.execute_hook("not-a-token", {})
        assert await h.result(timeout=10) == {"ok": True}


@workflow
async def child_double(ctx: Context, n: int) -> int:
    await ctx.sleep("think", "100ms")
    if n < 0:
        raise ValueError("negative")
    return n * 2


@workflow
async def parent(ctx: Context, nums: list[int]) -> Any:
    h1 = await ctx.start_child(child_double, nums[0], run_id=f"{ctx.run_id}-c0")
    total = await ctx.child(child_double, nums[1])
    total += await h1.result()
    try:
        await ctx.child("child_double", -1)
    except WorkflowFailed as exc:
        return {"total": total, "failed": str(exc.error)}
    return {"total": total}


async def test_child_workflows(make_rt: MakeRuntime) -> None:
    async with make_rt(parent, child_double) as rt:
        h = await rt.trigger(parent, [1, 2])
        out = await h.result(timeout=15)
        assert out == {"total": 6, "failed": "ValueError: negative"}
        children = await rt.get_child_runs(h.run_id)
        assert len(children) == 3
        assert {c.parent_run_id for c in children} == {h.run_id}
        assert f"{h.run_id}-c0" in {c.run_id for c in children}
        parent_info = await rt.get_parent_run(children[0].run_id)
        assert parent_info is not None and parent_info.run_id == h.run_id
        assert await rt.get_parent_run(h.run_id) is None


async def test_parent_suspends_while_child_runs_and_survives_restart(make_rt: MakeRuntime) -> None:
    @workflow
    async def slow_child(ctx: Context, _: Any) -> str:
        await ctx.wait_for_signal("finish")
        return "child-done"

    @workflow
    async def waiting_parent(ctx: Context, _: Any) -> Any:
        assert ctx.parent_run_id is None
        return await ctx.child(slow_child, None, run_id=f"{ctx.run_id}-kid")

    async with make_rt(waiting_parent, slow_child) as rt:
        h = await rt.trigger(waiting_parent, None)
        await wait_status(rt, h.run_id, "suspended")
        await wait_status(rt, f"{h.run_id}-kid", "suspended")
        info = await rt.get_run(h.run_id)
        assert info.pending[0]["kind"] == "child"
    async with make_rt(waiting_parent, slow_child) as rt:
        await rt.signal(f"{h.run_id}-kid", "finish")
        assert await rt.handle(h.run_id).result(timeout=10) == "child-done"


async def test_cancel_suspended_run_and_children(make_rt: MakeRuntime) -> None:
    @workflow
    async def forever(ctx: Context, _: Any) -> None:
        await ctx.wait_for_signal("never")

    @workflow
    async def fan(ctx: Context, _: Any) -> None:
        await ctx.start_child(forever, None, run_id=f"{ctx.run_id}-a")
        await ctx.wait_for_signal("never")

    async with make_rt(fan, forever) as rt:
        h = await rt.trigger(fan, None)
        await wait_status(rt, h.run_id, "suspended")
        await wait_status(rt, f"{h.run_id}-a", "suspended")
        await rt.cancel(h.run_id)
        assert await h.status() == "cancelled"
        assert (await rt.get_run(f"{h.run_id}-a")).status == "cancelled"
        with pytest.raises(WorkflowCancelled):
            await h.result(timeout=5)
        with pytest.raises(RunClosed):
            await rt.signal(h.run_id, "never")


async def test_cancel_running_run_lets_cleanup_run(make_rt: MakeRuntime) -> None:
    started = asyncio.Event()
    cleaned: list[str] = []

    async def long_step() -> None:
        started.set()
        await asyncio.sleep(30)

    @workflow
    async def with_cleanup(ctx: Context, _: Any) -> None:
        try:
            await ctx.step("long", long_step)
        finally:
            await ctx.step("cleanup", lambda: cleaned.append("done"))

    async with make_rt(with_cleanup) as rt:
        h = await rt.trigger(with_cleanup, None)
        await asyncio.wait_for(started.wait(), 10)
        await rt.cancel(h.run_id)
        with pytest.raises(WorkflowCancelled):
            await h.result(timeout=5)
        async with asyncio.timeout(5):
            while True:
                info = await rt.get_run(h.run_id)
                if info.history[-1].kind == "cleanup_finished":
                    break
                await asyncio.sleep(0.02)
        # The in-flight step is not recorded; the cleanup step is, exactly once, after
        # the cancellation (a worker replayed the run and raised WorkflowCancelled).
        assert info.status == "cancelled"
        assert cleaned == ["done"]
        assert [(e.kind, e.name) for e in info.history] == [
            ("run_cancelled", ""),
            ("step_completed", "cleanup"),
            ("cleanup_finished", ""),
        ]
        assert info.history[-1].payload == "completed"


async def test_emit_event_and_get_events(make_rt: MakeRuntime) -> None:
    @workflow
    async def tracked(ctx: Context, _: Any) -> None:
        await ctx.emit_event("started", {"at": 1})
        await ctx.step("work", lambda: None)
        await ctx.emit_event("finished", {"at": 2})

    async with make_rt(tracked) as rt:
        h = await rt.trigger(tracked, None)
        await h.result(timeout=10)
        events = await rt.get_events(h.run_id)
        assert [(e.kind, e.payload) for e in events] == [
            ("started", {"at": 1}),
            ("finished", {"at": 2}),
        ]


async def test_deterministic_values_and_quiet_logger_under_replay(
    make_rt: MakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    @workflow
    async def values(ctx: Context, _: Any) -> Any:
        ctx.logger.info("begin")
        first = (ctx.now(), ctx.random(), ctx.uuid4())
        await ctx.sleep("gap", "50ms")
        second = (ctx.now(), ctx.random(), ctx.uuid4())
        ctx.logger.info("end")
        return {
            "first": [first[0], first[1], str(first[2])],
            "second": [second[0], second[1], str(second[2])],
        }

    caplog.set_level(logging.INFO, logger="durable.workflow")
    async with make_rt(values, sticky_cache=0) as rt:
        h = await rt.trigger(values, None)
        out = await h.result(timeout=10)
        info = await rt.get_run(h.run_id)
    recorded = [e.payload for e in info.history if e.kind == "recorded"]
    assert recorded[0] == out["first"][0] and recorded[1] == out["first"][1]
    assert recorded[2] == out["first"][2]
    assert out["first"][0].tzinfo is not None
    assert out["first"][0] <= out["second"][0]
    lines = [r.getMessage() for r in caplog.records if r.name == "durable.workflow"]
    assert sum("begin" in line for line in lines) == 1  # not repeated by the replay
    assert sum("end" in line for line in lines) == 1
    assert h.run_id in lines[0]


async def test_versions_side_by_side(make_rt: MakeRuntime) -> None:
    @workflow(name="greet", version="1")
    async def greet_v1(ctx: Context, _: Any) -> str:
        await ctx.wait_for_signal("go")
        return "v1"

    @workflow(name="greet", version="2")
    async def greet_v2(ctx: Context, _: Any) -> str:
        return "v2"

    @workflow(name="greet", version="10")
    async def greet_v10(ctx: Context, _: Any) -> str:
        return "v10"

    async with make_rt(greet_v1) as rt:
        old = await rt.trigger("greet", None)
        await wait_status(rt, old.run_id, "suspended")
    async with make_rt(greet_v1, greet_v2) as rt:
        new = await rt.trigger("greet", None)
        assert await new.result(timeout=10) == "v2"
        await rt.signal(old.run_id, "go")
        assert await rt.handle(old.run_id).result(timeout=10) == "v1"
        assert (await rt.get_run(old.run_id)).version == "1"
    async with make_rt(greet_v2) as rt:
        # Version 10 is registered nowhere: the run waits visibly instead of failing.
        waiting = await rt.trigger(greet_v10, None)
        await asyncio.sleep(0.3)
        assert await waiting.status() == "pending"
    async with make_rt(greet_v2, greet_v10) as rt:
        assert (await rt.trigger("greet", None)).run_id
        assert await rt.handle(waiting.run_id).result(timeout=10) == "v10"


async def test_circuit_breakers(make_rt: MakeRuntime) -> None:
    @workflow(max_events=5)
    async def chatty(ctx: Context, _: Any) -> None:
        for i in range(100):
            await ctx.step(f"s{i}", lambda: None)

    @workflow(execution_timeout="300ms")
    async def slowpoke(ctx: Context, _: Any) -> None:
        await ctx.sleep("long", "1h")

    async with make_rt(chatty, slowpoke) as rt:
        a = await rt.trigger(chatty, None)
        b = await rt.trigger(slowpoke, None)
        with pytest.raises(WorkflowFailed, match="max_events"):
            await a.result(timeout=10)
        with pytest.raises(WorkflowFailed, match="execution_timeout"):
            await b.result(timeout=10)
        info = await rt.get_run(a.run_id)
        assert len([e for e in info.history if e.kind == "step_completed"]) == 5


async def test_sleep_until_and_duration_forms(make_rt: MakeRuntime) -> None:
    @workflow
    async def forms(ctx: Context, _: Any) -> str:
        await ctx.sleep("a", {"amount": 50, "unit": "milliseconds"})
        await ctx.sleep("b", timedelta(milliseconds=50))
        await ctx.sleep("c", 0.05)
        await ctx.sleep_until("d", ctx.now() + timedelta(milliseconds=50))
        return "ok"

    async with make_rt(forms) as rt:
        assert await (await rt.trigger(forms, None)).result(timeout=10) == "ok"


async def test_parallel_failure_propagates_like_gather(make_rt: MakeRuntime) -> None:
    def boom() -> None:
        raise ValueError("bad item")

    @workflow
    async def fan(ctx: Context, _: Any) -> Any:
        from durable import RetryPolicy, StepFailed

        try:
            await ctx.parallel(
                [
                    ctx.step("ok", lambda: 1),
                    ctx.step("bad", boom, retry=RetryPolicy(max_attempts=1)),
                ]
            )
        except StepFailed as exc:
            return exc.step
        return None

    async with make_rt(fan) as rt:
        assert await (await rt.trigger(fan, None)).result(timeout=10) == "bad"


async def test_unfinished_branches_stop_when_the_run_ends(make_rt: MakeRuntime) -> None:
    finished: list[str] = []

    async def slow() -> int:
        await asyncio.sleep(0.5)
        finished.append("slow")
        return 1

    def boom() -> None:
        raise ValueError("bad item")

    @workflow
    async def fan_fail(ctx: Context, _: Any) -> Any:
        from durable import RetryPolicy

        return await ctx.parallel(
            [ctx.step("slow", slow), ctx.step("bad", boom, retry=RetryPolicy(max_attempts=1))]
        )

    async with make_rt(fan_fail) as rt:
        h = await rt.trigger(fan_fail, None)
        with pytest.raises(WorkflowFailed, match="bad"):
            await h.result(timeout=10)
        await asyncio.sleep(0.8)
        assert finished == []  # the sibling still in flight was stopped with the run
        info = await rt.get_run(h.run_id)
        assert "slow" not in [e.name for e in info.history]
