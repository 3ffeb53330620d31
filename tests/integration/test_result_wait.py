"""`RunHandle.result()` learns outcomes without polling: how many reads it costs.

A run this process executes hands its outcome over (no `get_run` at all); a run that
ended earlier costs one read; a run executed elsewhere costs a read, then NOTIFY wakes
the wait and one more read takes the outcome. Outcomes are kept only while needed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable import Context, Runtime, WorkflowFailed, workflow

from .conftest import MakeRuntime


async def _noop() -> None:
    return None


@workflow(name="three_steps")
async def three_steps(ctx: Context, n: int) -> int:
    for i in range(3):
        await ctx.step(f"s{i}", _noop)
    return n * 2


@workflow(name="fails_after_a_step")
async def fails_after_a_step(ctx: Context, _: Any) -> None:
    await ctx.step("s", _noop)
    raise ValueError("boom")


def count_get_run(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every `get_run` the runtime's store serves (a spy; the store stays real)."""
    calls: list[str] = []
    store = rt.store
    real = store.get_run

    async def spy(run_id: str) -> Any:
        calls.append(run_id)
        return await real(run_id)

    monkeypatch.setattr(store, "get_run", spy)
    return calls


def assert_nothing_kept(rt: Runtime) -> None:
    assert rt._waiters == {}
    assert rt._outcomes == {}
    assert len(rt._watched) == 0


async def test_runs_executed_here_never_read_their_record(
    make_rt: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_rt(three_steps, fails_after_a_step) as rt:
        calls = count_get_run(rt, monkeypatch)
        handles = [await rt.trigger(three_steps, i) for i in range(30)]
        # Some finish before their result() is asked, some while it waits.
        results = await asyncio.gather(*(h.result(timeout=30) for h in handles))
        assert results == [i * 2 for i in range(30)]
        failing = await rt.trigger(fails_after_a_step)
        with pytest.raises(WorkflowFailed, match="boom"):
            await failing.result(timeout=30)
        assert calls == []
        assert_nothing_kept(rt)
        del handles, failing
        # Once read, the outcomes live on in nothing the runtime holds.
        assert len(rt._watched) == 0


async def test_result_of_a_finished_run_is_one_read(
    make_rt: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_rt(three_steps) as rt:
        run_id = (await rt.trigger(three_steps, 5)).run_id
        assert await rt.handle(run_id).result(timeout=30) == 10
        calls = count_get_run(rt, monkeypatch)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await rt.handle(run_id).result(timeout=30) == 10
        assert loop.time() - t0 < 0.5  # at once: no wait for a notice or a poll
        assert calls == [run_id]
        assert_nothing_kept(rt)


async def test_result_of_a_run_executed_elsewhere_wakes_on_its_notice(
    make_rt: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()

    async def wait_gate() -> None:
        await gate.wait()

    @workflow(name="gated")
    async def gated(ctx: Context, _: Any) -> str:
        await ctx.step("gate", wait_gate)
        return "done"

    # Polling is slow here (10 s and more while listening): only the notice can make
    # result() return within the timeout below.
    async with (
        make_rt(gated, worker=False, poll_interval="2s") as client,
        make_rt(gated, local_dispatch=False) as worker,
    ):
        calls = count_get_run(client, monkeypatch)
        handle = await client.trigger(gated)
        waiting = asyncio.create_task(handle.result(timeout=8))
        for _ in range(200):
            if worker.executor.is_live(handle.run_id):
                break
            await asyncio.sleep(0.01)
        assert worker.executor.is_live(handle.run_id)
        assert not client.executor.is_live(handle.run_id)
        gate.set()
        assert await waiting == "done"
        # Only after the notice: the trigger knew the new run had not ended (LISTEN was
        # up), so result() did not read it before waiting.
        assert calls == [handle.run_id]
        assert_nothing_kept(client)


async def test_finished_runs_leave_no_cyclic_garbage(make_rt: MakeRuntime) -> None:
    """Each finished run is freed by reference counting: the cyclic collector has nothing
    of it to find (it used to find ~17 objects per run: execution <-> ctx and others)."""
    import gc

    from durable.context import Context as Ctx
    from durable.worker.execution import RunExecution

    async with make_rt(three_steps) as rt:
        await (await rt.trigger(three_steps, 0)).result(timeout=30)  # warm up
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            handles = [await rt.trigger(three_steps, i) for i in range(20)]
            await asyncio.gather(*(h.result(timeout=30) for h in handles))
            del handles
            await asyncio.sleep(0.05)
            gc.collect()
            ours = [o for o in gc.garbage if isinstance(o, RunExecution | Ctx)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert ours == []
