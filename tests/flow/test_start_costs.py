"""What starting a queued run costs, on both stores: queries counted, never timed.

A queued run waits for a slot; what it must not do meanwhile is cost queries that
delay the claims starting it (docs/flow-control.md, "How a queued run starts").
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from durable import Context, Queue, Runtime, workflow


def _count(store: Any, counts: Counter[str], *names: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Count calls of the store's methods `names` (the store itself is left as is)."""
    for name in names:
        original: Callable[..., Awaitable[Any]] = getattr(store, name)

        async def counted(*args: Any, _name: str = name, _orig: Any = original, **kw: Any) -> Any:
            counts[_name] += 1
            return await _orig(*args, **kw)

        monkeypatch.setattr(store, name, counted)


async def test_result_of_a_waiting_queued_run_reads_nothing(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """result() of runs this process triggered into a full queue: their ends reach it
    from the local finish (or a notice), so it never reads the runs while they wait."""
    gate = asyncio.Event()

    async def hold() -> None:
        await gate.wait()

    @workflow(name="one_at_a_time", queue=Queue("single", concurrency=1))
    async def job(ctx: Context, inp: Any) -> Any:
        if inp == 0:
            await ctx.step("hold", hold)
        return inp

    async with backend.runtime(job, poll_interval="50ms") as rt:
        reads: Counter[str] = Counter()
        _count(rt.store, reads, "get_run", monkeypatch=monkeypatch)
        handles = [await rt.trigger(job, i) for i in range(4)]
        waiting = [asyncio.create_task(h.result(timeout=30)) for h in handles]
        await asyncio.sleep(0.1)  # let every result() call start waiting
        gate.set()
        assert await asyncio.gather(*waiting) == [0, 1, 2, 3]
    assert reads["get_run"] == 0


async def test_result_reads_a_run_whose_end_came_as_a_notice(backend: Any) -> None:
    """A queued run another worker ran: the notice of its end clears the knowledge that
    it had not ended, and result() reads its outcome."""

    @workflow(name="elsewhere", queue=Queue("remote", concurrency=2))
    async def job(ctx: Context, inp: Any) -> Any:
        return inp * 2

    async with backend.runtime(job, worker=False) as client:
        handle = await client.trigger(job, 21)
        async with backend.runtime(job, poll_interval="50ms") as worker:
            assert await worker.handle(handle.run_id).result(timeout=30) == 42
            assert await handle.result(timeout=30) == 42


async def test_a_worker_busy_with_queued_runs_skips_the_needless_unqueued_claim(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A freed queue slot can only let a queued run start: the unqueued claim is made
    again only when something else happened (a notice, a timer, the poll)."""

    @workflow(name="serial", queue=Queue("serial", concurrency=1))
    async def job(ctx: Context, inp: Any) -> Any:
        await ctx.step("s", _noop)
        return inp

    async with backend.runtime(job, worker=False) as client:
        for i in range(20):
            await client.trigger(job, i)
    async with backend.runtime(job, poll_interval="5s") as rt:
        calls: Counter[str] = Counter()
        _count(rt.store, calls, "claim", "claim_queue", monkeypatch=monkeypatch)
        for r in await rt.list_runs(limit=30):
            await rt.handle(r.run_id).result(timeout=30)
    assert calls["claim_queue"] >= 20  # one start per freed slot
    assert calls["claim"] * 3 <= calls["claim_queue"]


async def test_an_unqueued_run_starts_on_a_worker_busy_with_queued_runs(backend: Any) -> None:
    """The unqueued claim skipped while queued runs flow is made again on the notice of a
    new run (the poll interval here is far longer than the test)."""
    gate = asyncio.Event()

    async def step() -> None:
        await asyncio.sleep(0.01)

    @workflow(name="stream", queue=Queue("stream", concurrency=2))
    async def queued(ctx: Context, inp: Any) -> Any:
        await ctx.step("s", step)
        return inp

    @workflow(name="plain")
    async def plain(ctx: Context, inp: Any) -> Any:
        gate.set()
        return inp

    async def feed(rt: Runtime) -> None:
        while not gate.is_set():
            await rt.trigger(queued, None)
            await asyncio.sleep(0.005)

    async with backend.runtime(queued, plain, poll_interval="60s") as rt:
        feeder = asyncio.create_task(feed(rt))
        await asyncio.sleep(0.2)  # queued runs flowing: the unqueued claim is skipped
        async with backend.runtime(queued, plain, worker=False) as client:
            handle = await client.trigger(plain, "x")
            assert await handle.result(timeout=20) == "x"
        await feeder


async def _noop() -> None:
    return None


async def test_runs_ending_here_cost_no_unqueued_claim(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local dispatch, unqueued workflow: a run ending frees a slot, which makes no
    unqueued run claimable (the last claim came back short and took all it saw), so no
    claim runs between polls. Before: one claim query per run ended."""

    async def noop() -> None:
        return None

    @workflow(name="plain_one_step")
    async def plain(ctx: Context, inp: Any) -> Any:
        await ctx.step("s", noop)
        return inp

    async with backend.runtime(plain, poll_interval="30s") as rt:
        await (await rt.trigger(plain, -1)).result(timeout=30)
        await asyncio.sleep(0.05)  # the claim loop's round after that run ended
        claims: Counter[str] = Counter()
        _count(rt.store, claims, "claim", monkeypatch=monkeypatch)
        for i in range(20):
            assert await (await rt.trigger(plain, i)).result(timeout=30) == i
        await asyncio.sleep(0.05)
    assert claims["claim"] == 0
