"""Flow control in-process, on both stores: limits, priority, delay, debounce, stats.

Several runtimes share one store to act as several workers. Every limit is checked on
the times the store recorded (`started_at`, `finished_at`), not on in-process counters.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from durable import Context, Queue, Runtime, ValidationError, WorkflowDef, workflow

from .helpers import max_overlap, max_per_key_overlap, max_starts_in_window, spans

FAST = {"poll_interval": "50ms", "lease": "2s"}


async def _work(ms: int) -> int:
    await asyncio.sleep(ms / 1000)
    return ms


def _job(queue: Queue, name: str = "job") -> WorkflowDef:
    @workflow(name=name, queue=queue)
    async def job(ctx: Context, inp: Any) -> Any:
        await ctx.step("work", _work, 15)
        return inp

    return job


async def _spans(backend: Any) -> list[Any]:
    return await spans(backend.dsn, backend.schema, backend.memory)


async def _workers(stack: AsyncExitStack, backend: Any, n: int, *wfs: WorkflowDef) -> list[Runtime]:
    return [
        await stack.enter_async_context(backend.runtime(*wfs, concurrency=20, **FAST))
        for _ in range(n)
    ]


async def test_global_concurrency_is_never_exceeded(backend: Any) -> None:
    job = _job(Queue("five", concurrency=5))
    async with AsyncExitStack() as stack:
        rts = await _workers(stack, backend, 2, job)
        handles = [await rts[i % 2].trigger(job, i) for i in range(30)]
        assert [await h.result(timeout=30) for h in handles] == list(range(30))
    done = await _spans(backend)
    assert len(done) == 30
    assert max_overlap(done) == 5  # reached (so the check can fail), never passed


async def test_per_key_concurrency_one_run_per_key(backend: Any) -> None:
    job = _job(Queue("tenants", per_key_concurrency=1))
    async with AsyncExitStack() as stack:
        rts = await _workers(stack, backend, 2, job)
        handles = [await rts[i % 2].trigger(job, i, key=f"k{i % 5}") for i in range(30)]
        for h in handles:
            await h.result(timeout=30)
    done = await _spans(backend)
    per_key = max_per_key_overlap(done)
    assert set(per_key) == {f"k{i}" for i in range(5)}
    assert set(per_key.values()) == {1}
    assert max_overlap(done) > 1  # different keys did run side by side


async def test_rate_limit_holds_in_every_sliding_window(backend: Any) -> None:
    job = _job(Queue("rated", rate_limit=(4, "200ms")))
    async with AsyncExitStack() as stack:
        rts = await _workers(stack, backend, 2, job)
        handles = [await rts[i % 2].trigger(job, i) for i in range(16)]
        for h in handles:
            await h.result(timeout=30)
    done = await _spans(backend)
    assert max_starts_in_window(done, 0.2) == 4
    first = min(s.started for s in done)
    last = max(s.started for s in done)
    assert (last - first).total_seconds() >= 0.6  # 16 starts need at least 3 full windows


async def test_priority_lower_first_fifo_within(backend: Any) -> None:
    job = _job(Queue("lanes", concurrency=1))
    order = [(3, "a"), (1, "b"), (5, "c"), (1, "d"), (0, "e"), (3, "f")]
    async with backend.runtime(job, worker=False) as client:
        for prio, name in order:
            await client.trigger(job, name, priority=prio)
    async with backend.runtime(job, **FAST) as rt:
        runs = await rt.list_runs(limit=10)
        for r in runs:
            await rt.handle(r.run_id).result(timeout=30)
        names = {r.run_id: r.input for r in runs}
    done = sorted(await _spans(backend), key=lambda s: s.started)
    assert [names[s.run_id] for s in done] == ["e", "b", "d", "a", "f", "c"]


async def test_per_key_round_robin_does_not_starve_a_key(backend: Any) -> None:
    job = _job(Queue("rr", concurrency=1, per_key_concurrency=1))
    async with backend.runtime(job, worker=False) as client:
        for i in range(6):
            await client.trigger(job, f"busy{i}", key="busy")
        await client.trigger(job, "quiet", key="quiet")
    async with backend.runtime(job, **FAST) as rt:
        for r in await rt.list_runs(limit=10):
            await rt.handle(r.run_id).result(timeout=30)
        names = {r.run_id: r.input for r in await rt.list_runs(limit=10)}
    done = sorted(await _spans(backend), key=lambda s: s.started)
    assert [names[s.run_id] for s in done][:2] == ["busy0", "quiet"]


async def test_delay_sets_the_earliest_start(backend: Any) -> None:
    @workflow(name="later")
    async def later(ctx: Context, inp: Any) -> Any:
        return inp

    async with backend.runtime(later, **FAST) as rt:
        # The delay counts from the trigger call; the run's created_at is stamped when
        # its insert batch is written, which a loaded machine can make a little later.
        called = rt.clock.now()
        h = await rt.trigger(later, 1, delay="400ms")
        info = await rt.get_run(h.run_id)
        assert info.status == "pending"
        assert [p["kind"] for p in info.pending] == ["delay"]
        assert await h.result(timeout=10) == 1
    (span,) = await _spans(backend)
    assert (span.started - called).total_seconds() >= 0.4


async def test_debounce_collapses_triggers_into_one_run_with_the_last_input(
    backend: Any,
) -> None:
    job = _job(Queue("sync", concurrency=10))
    async with backend.runtime(job, **FAST) as rt:
        handles = []
        for i in range(10):
            await asyncio.sleep(0.02)
            last_trigger = rt.clock.now()
            handles.append(await rt.trigger(job, i, debounce=("cust-1", "300ms")))
        other = await rt.trigger(job, "other", debounce=("cust-2", "300ms"))
        assert len({h.run_id for h in handles}) == 1
        assert [h.created for h in handles] == [True] + [False] * 9
        assert other.run_id != handles[0].run_id
        assert await handles[0].result(timeout=10) == 9
        assert await other.result(timeout=10) == "other"
        # After the run started, the same debounce key starts a new run.
        again = await rt.trigger(job, "again", debounce=("cust-1", "10ms"))
        assert again.run_id != handles[0].run_id
        assert await again.result(timeout=10) == "again"
    by_id = {s.run_id: s for s in await _spans(backend)}
    assert len(by_id) == 3
    assert (by_id[handles[0].run_id].started - last_trigger).total_seconds() >= 0.3


async def test_pending_says_what_the_run_waits_for_and_cancel_frees_the_slot(
    backend: Any,
) -> None:
    queue = Queue("gate", concurrency=1, per_key_concurrency=1, rate_limit=(2, "1h"))

    @workflow(name="gated", queue=queue)
    async def gated(ctx: Context, inp: Any) -> Any:
        return await ctx.wait_for_signal("go")

    async with backend.runtime(gated, **FAST) as rt:
        first = await rt.trigger(gated, 1, key="a")
        while (await first.status()) != "suspended":  # active while suspended
            await asyncio.sleep(0.02)
        second = await rt.trigger(gated, 2, key="a")
        await asyncio.sleep(0.2)
        info = await rt.get_run(second.run_id)
        assert info.status == "pending"
        assert sorted(p["kind"] for p in info.pending) == ["key_slot", "queue_slot"]
        stats = await rt.queue_stats("gate")
        assert (stats.active, stats.pending, stats.window_starts) == (1, 1, 1)
        assert [(k.key, k.active, k.pending) for k in stats.keys] == [("a", 1, 1)]
        await rt.cancel(first.run_id)  # frees the slot in the same transaction
        while (await second.status()) != "suspended":
            await asyncio.sleep(0.02)
        third = await rt.trigger(gated, 3, key="b")
        await asyncio.sleep(0.2)
        info = await rt.get_run(third.run_id)
        assert sorted(p["kind"] for p in info.pending) == ["queue_slot", "rate_limit"]
        await rt.signal(second.run_id, "go", "ok")
        assert await second.result(timeout=10) == "ok"
        await asyncio.sleep(0.2)
        assert (await rt.get_run(third.run_id)).status == "pending"  # rate window full
        assert [p["kind"] for p in (await rt.get_run(third.run_id)).pending] == ["rate_limit"]
        with pytest.raises(ValidationError, match="nope"):
            await rt.queue_stats("nope")
        assert [q.name for q in await rt.list_queues()] == ["gate"]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"concurency": 5}, "concurency"),
        ({"concurrency": 0}, "concurrency 0"),
        ({"per_key_concurrency": -1}, "per_key_concurrency -1"),
        ({"rate_limit": (0, "1s")}, "0"),
        ({"rate_limit": (5, "soon")}, "soon"),
        ({"rate_limit": 5}, "rate_limit 5"),
        ({"concurrency": 2.5}, "2.5"),
    ],
)
def test_bad_queue_options_fail_naming_the_value(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        Queue("q", **options)


async def test_bad_trigger_options_write_nothing(backend: Any) -> None:
    job = _job(Queue("strict", concurrency=1))

    @workflow(name="plain")
    async def plain(ctx: Context, inp: Any) -> Any:
        return inp

    async with backend.runtime(job, plain, worker=False) as rt:
        cases: list[tuple[Any, dict[str, Any], str]] = [
            (plain, {"key": "k"}, "key 'k'"),
            (plain, {"priority": 3}, "priority 3"),
            (job, {"priority": "high"}, "priority 'high'"),
            (job, {"priority": True}, "priority True"),
            (job, {"key": 42}, "key 42"),
            (job, {"key": ""}, "key ''"),
            (job, {"delay": "whenever"}, "whenever"),
            (job, {"debounce": ("k", "forever")}, "forever"),
            (job, {"debounce": "k"}, "debounce 'k'"),
            (job, {"debounce": ("k", "1s"), "delay": "1s"}, "delay '1s'"),
            (job, {"debounce": ("k", "1s"), "idempotency_key": "i"}, "debounce"),
        ]
        for wf, kwargs, needle in cases:
            with pytest.raises(ValidationError, match=needle):
                await rt.trigger(wf, 1, **kwargs)
        assert await rt.list_runs() == []


def test_one_queue_name_one_set_of_limits() -> None:
    a = _job(Queue("same", concurrency=1), name="a")
    b = _job(Queue("same", concurrency=2), name="b")
    with pytest.raises(ValidationError, match="same"):
        Runtime("memory://", workflows=[a, b])

    async def plain(ctx: Context, inp: Any) -> Any:
        return inp

    with pytest.raises(ValidationError, match=r"expected a durable\.Queue"):
        workflow(queue="emails")(plain)  # type: ignore[arg-type]


async def test_sweep_keeps_the_limits(backend: Any) -> None:
    @workflow(name="parked", queue=Queue("swept", concurrency=2))
    async def parked(ctx: Context, inp: Any) -> Any:
        return await ctx.wait_for_signal("go")

    async with backend.runtime(parked, worker=False) as rt:
        handles = [await rt.trigger(parked, i) for i in range(5)]
        assert await rt.sweep() == 2  # two start and suspend, holding both slots
        assert await rt.sweep() == 0
        statuses = [await h.status() for h in handles]
        assert statuses == ["suspended"] * 2 + ["pending"] * 3
        await rt.signal(handles[0].run_id, "go", "done")
        assert await rt.sweep() == 2  # the woken run ends, and one more starts
        assert await handles[0].result(timeout=5) == "done"
        assert [await h.status() for h in handles[1:]] == ["suspended"] * 2 + ["pending"] * 2
    assert max_overlap([s for s in await _spans(backend) if s.finished]) <= 2


async def test_unqueued_runs_do_not_wait_behind_a_full_queue(backend: Any) -> None:
    @workflow(name="stuck", queue=Queue("full", concurrency=1))
    async def stuck(ctx: Context, inp: Any) -> Any:
        return await ctx.wait_for_signal("go")

    @workflow(name="free")
    async def free(ctx: Context, inp: Any) -> Any:
        return inp

    async with backend.runtime(stuck, free, worker=False) as client:
        blocked = [await client.trigger(stuck, i) for i in range(20)]
        plain = [await client.trigger(free, i) for i in range(5)]  # triggered after them
    async with backend.runtime(stuck, free, **FAST) as rt:
        results = [await rt.handle(h.run_id).result(timeout=10) for h in plain]
        assert results == list(range(5))
        statuses = [await rt.handle(h.run_id).status() for h in blocked]
        assert statuses.count("pending") == 19


async def test_runs_created_before_their_workflow_had_a_queue_still_run(backend: Any) -> None:
    @workflow(name="grown")
    async def before(ctx: Context, inp: Any) -> Any:
        return await ctx.wait_for_signal("go")

    after = workflow(name="grown", queue=Queue("grown", concurrency=1))(before.fn)
    async with backend.runtime(before, **FAST) as rt:
        old = await rt.trigger(before, 1)
        while await old.status() != "suspended":
            await asyncio.sleep(0.02)
    async with backend.runtime(after, **FAST) as rt:
        await rt.signal(old.run_id, "go", "woke")
        assert await rt.handle(old.run_id).result(timeout=10) == "woke"
        new = await rt.trigger(after, 2)
        await rt.signal(new.run_id, "go", "queued")
        assert await new.result(timeout=10) == "queued"
