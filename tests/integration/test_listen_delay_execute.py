"""The last seed gaps of issue 13, on both stores: Sonamu's `listenDelay`
(`Runtime(listen_delay=)`) and Visulima's trigger that runs the run until its first
suspension (`trigger(..., execute=True)`).

Claims are counted through a spy on the worker's store, never timed: a burst that a
delayed worker takes in one claim would take one claim per trigger without the delay.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable import Context, RunStatus, WorkflowNotFound, workflow
from durable.config import RuntimeConfig
from durable.store import Store

from .conftest import MakeRuntime

BURST = 8


class ClaimSpy:
    """Wraps `store.claim`; records the size of every claim that returned runs."""

    def __init__(self, store: Store) -> None:
        self.real = store.claim
        self.batches: list[int] = []
        self.calls = 0

    async def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        claimed = await self.real(**kwargs)
        if claimed:
            self.batches.append(len(claimed))
        return claimed


def spy_on(monkeypatch: pytest.MonkeyPatch, store: Store) -> ClaimSpy:
    spy = ClaimSpy(store)
    monkeypatch.setattr(store, "claim", spy)
    return spy


@workflow
async def echo(ctx: Context, n: int) -> int:
    return n


@workflow
async def parent_of_echo(ctx: Context, n: int) -> int:
    return 1 + await ctx.child(echo, n)


# -- listen_delay ------------------------------------------------------------------------


async def test_without_listen_delay_each_notified_trigger_is_claimed_alone(
    make_rt: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        make_rt(echo, local_dispatch=False) as worker,
        make_rt(echo, worker=False) as client,
    ):
        assert worker.config.listen_delay is None
        spy = spy_on(monkeypatch, worker.store)
        for n in range(BURST):  # each trigger's notice is acted on at once
            assert await (await client.trigger(echo, n)).result(timeout=10) == n
    assert spy.batches == [1] * BURST


async def test_listen_delay_claims_a_burst_from_another_runtime_together(
    make_rt: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        make_rt(echo, listen_delay="1500ms") as worker,
        make_rt(echo, worker=False) as client,
    ):
        assert worker.config.listen_delay == 1.5
        spy = spy_on(monkeypatch, worker.store)
        handles = [await client.trigger(echo, n) for n in range(BURST)]
        results = [await h.result(timeout=10) for h in handles]
    assert results == list(range(BURST))
    assert sum(spy.batches) == BURST
    assert len(spy.batches) <= 2 < BURST  # vs one claim per trigger without the delay


async def test_listen_delay_never_delays_local_dispatch_or_own_children(
    make_rt: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A delay far longer than the timeouts below: any delayed claim would time out.
    async with make_rt(echo, parent_of_echo, listen_delay="60s") as rt:
        spy = spy_on(monkeypatch, rt.store)
        assert await (await rt.trigger(echo, 1)).result(timeout=10) == 1
        assert spy.batches == []  # inserted already leased to this worker: no claim at all
        # The child it starts and the parent its end wakes are this process's own work.
        assert await (await rt.trigger(parent_of_echo, 2)).result(timeout=10) == 3
        # The child, then the woken parent, each claimed at once (a 60 s delay would
        # have timed out above); either may also start without a claim at all (local
        # dispatch), so at most two claims, never a batch.
        assert spy.batches in ([1, 1], [1], [])


def test_bad_listen_delay_is_rejected(make_rt: MakeRuntime) -> None:
    for bad in ("-1s", "soon", "2m", True):
        with pytest.raises(ValueError, match=r"invalid (listen_delay|duration)"):
            make_rt(echo, listen_delay=bad)
    assert RuntimeConfig.build(listen_delay=0.5).listen_delay == 0.5
    assert RuntimeConfig.build(listen_delay="500ms").listen_delay == 0.5


# -- trigger(..., execute=True) ----------------------------------------------------------

RAN: list[str] = []


def charge(order_id: str) -> str:
    RAN.append(f"charge {order_id}")
    return f"paid {order_id}"


@workflow(name="order-fulfilment")
async def order(ctx: Context, payload: dict[str, str]) -> str:
    await ctx.step("charge", charge, payload["order_id"])
    decision = await ctx.wait_for_signal("review-decision")
    await ctx.sleep("settle", {"amount": 1, "unit": "hours"})
    return str(decision)


@workflow
async def quick(ctx: Context, n: int) -> int:
    return await ctx.step("double", lambda: n * 2)


@workflow
async def broken(ctx: Context, _: Any) -> None:
    raise RuntimeError("no stock")


@pytest.mark.parametrize("worker", [False, True])
async def test_execute_runs_the_run_here_until_its_first_suspension(
    make_rt: MakeRuntime, worker: bool
) -> None:
    RAN.clear()
    async with make_rt(order, worker=worker) as rt:
        handle = await rt.trigger(order, {"order_id": "A1"}, execute=True)
        assert handle.created
        assert RAN == ["charge A1"]  # already ran, in this call
        assert await handle.status() == RunStatus.SUSPENDED
        info = await rt.get_run(handle.run_id)
        assert [p["kind"] for p in info.pending] == ["signal"]
        await rt.signal(handle.run_id, "review-decision", "ok")
        if not worker:
            assert await rt.sweep() == 1  # on to the next suspension: the hour's sleep
        async with asyncio.timeout(10):  # a worker resumes it by itself
            while [p["kind"] for p in (await rt.get_run(handle.run_id)).pending] != ["sleep"]:
                await asyncio.sleep(0.02)
        assert await handle.status() == RunStatus.SUSPENDED
        assert RAN == ["charge A1"]  # the step is never run again


@pytest.mark.parametrize("worker", [False, True])
async def test_execute_returns_completed_or_failed_runs(make_rt: MakeRuntime, worker: bool) -> None:
    async with make_rt(quick, broken, worker=worker, local_dispatch=False) as rt:
        done = await rt.trigger(quick, 21, execute=True)
        assert await done.status() == RunStatus.COMPLETED
        assert await done.result(timeout=0.5) == 42
        failed = await rt.trigger(broken, None, execute=True)
        assert await failed.status() == RunStatus.FAILED
        info = await rt.get_run(failed.run_id)
        assert info.error is not None and "no stock" in info.error


async def test_execute_does_not_run_an_existing_run_again(make_rt: MakeRuntime) -> None:
    RAN.clear()
    async with make_rt(order, worker=False) as rt:
        first = await rt.trigger(order, {"order_id": "B2"}, idempotency_key="k", execute=True)
        again = await rt.trigger(order, {"order_id": "B2"}, idempotency_key="k", execute=True)
        assert (again.run_id, again.created) == (first.run_id, False)
        assert RAN == ["charge B2"]
        assert await again.status() == RunStatus.SUSPENDED
        assert len(await rt.list_runs()) == 1


async def test_execute_goes_past_a_full_worker(make_rt: MakeRuntime) -> None:
    gate = asyncio.Event()

    @workflow
    async def blocker(ctx: Context, _: Any) -> None:
        await ctx.step("block", gate.wait)

    async with make_rt(blocker, quick, concurrency=1) as rt:
        held = await rt.trigger(blocker)  # takes the only slot
        done = await rt.trigger(quick, 5, execute=True)  # the caller's await bounds it
        assert await done.status() == RunStatus.COMPLETED
        assert await held.status() == RunStatus.RUNNING
        gate.set()
        await held.result(timeout=10)


async def test_execute_of_an_unregistered_workflow_fails_and_writes_nothing(
    make_rt: MakeRuntime,
) -> None:
    async with make_rt(worker=False) as rt:
        with pytest.raises(WorkflowNotFound, match="execute=True"):
            await rt.trigger(quick, 1, execute=True)
        assert await rt.list_runs() == []
        # Without execute, a client may record runs of workflows it does not run.
        handle = await rt.trigger(quick, 1)
        assert await handle.status() == RunStatus.PENDING
