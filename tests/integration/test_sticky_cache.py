"""Issue 16, item 8: the sticky cache drops what nothing will resume, and is bounded by bytes.

1. A run suspended on worker A and finished by worker B leaves A's cache when B's
   `d:` notice arrives (before: it stayed until LRU eviction; 221 of 300 finished runs,
   about 44 MB of locals, in the issue).
2. `sticky_cache_bytes` bounds the cache by an estimate of each entry's size (input and
   history payloads, plus a fixed overhead), not only by count.
3. Eviction closes the coroutine, so the workflow's `finally` blocks run: no ctx call in
   them runs a step body or writes anything, even if workflow code swallows the
   BaseException that stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from durable import Context, Runtime, workflow
from durable.errors import ValidationError

from .conftest import MakeRuntime


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (on the loop, polling every 10 ms) until `predicate()` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
    assert predicate(), what


CLOSED: list[str] = []


@workflow(name="held")
async def held(ctx: Context, inp: Any) -> Any:
    try:
        got = await ctx.wait_for_signal("go")
    finally:
        CLOSED.append(ctx.run_id)  # the coroutine ended: at its real end, or dropped
    return [len(inp or ""), got]


async def test_run_finished_elsewhere_leaves_the_sticky_cache(make_rt: MakeRuntime) -> None:
    CLOSED.clear()
    async with make_rt(held) as a:
        h = await a.trigger(held, None)
        await until(lambda: h.run_id in a.executor.sticky, "run cached on A")
        # A stops claiming, so worker B is the one that resumes and finishes the run.
        loop_task = a.executor._loop_task
        assert loop_task is not None
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task
        async with make_rt(held) as b:
            await b.signal(h.run_id, "go", "from B")
            assert await b.handle(h.run_id).result(timeout=10) == [0, "from B"]
            # B's `d:` notice makes A drop its coroutine (closing it) at once.
            with contextlib.suppress(TimeoutError):
                await until(lambda: h.run_id not in a.executor.sticky, "dropped", timeout=3)
            assert h.run_id not in a.executor.sticky, "A still caches the run B finished"
            assert len(a.executor.sticky) == 0
        # Two coroutines of the run ended: B's at the run's end, and A's dropped one.
        await until(lambda: len(CLOSED) == 2, "A's dropped coroutine was closed", timeout=5)


async def test_sticky_cache_is_bounded_by_bytes(make_rt: MakeRuntime) -> None:
    big = "x" * 100_000  # each entry weighs ~108 kB (8 KiB overhead + the input)
    async with make_rt(held, sticky_cache_bytes=300_000) as rt:
        handles = [await rt.trigger(held, big) for _ in range(5)]
        sticky = rt.executor.sticky

        async def all_suspended() -> bool:
            return all([(await h.status()) == "suspended" for h in handles])

        async with asyncio.timeout(10):
            while not await all_suspended():
                await asyncio.sleep(0.02)
        await until(lambda: sticky.evicted >= 3, "three entries evicted for bytes")
        assert len(sticky) == 2, len(sticky)
        assert 200_000 < sticky.bytes <= 300_000, sticky.bytes
        for h in handles:
            await rt.signal(h.run_id, "go", 1)
        # Evicted runs resume by replay; every run completes.
        assert [await h.result(timeout=10) for h in handles] == [[100_000, 1]] * 5
    async with make_rt(held, sticky_cache_bytes=50_000) as rt:
        h = await rt.trigger(held, big)
        await until(lambda: rt.executor.sticky.evicted == 1, "an entry over the bound alone")
        assert len(rt.executor.sticky) == 0
        await rt.signal(h.run_id, "go", 2)
        assert await h.result(timeout=10) == [100_000, 2]


@pytest.mark.parametrize(
    ("option", "value"),
    [("sticky_cache_bytes", -1), ("sticky_cache_bytes", 1.5), ("sticky_cache", -1)],
)
def test_sticky_cache_bounds_are_validated(option: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=option):
        Runtime("memory://", **{option: value})


BODIES: list[str] = []
FINALLY: list[str] = []


def cleanup_body(run_id: str) -> str:
    BODIES.append(run_id)
    return "cleaned"


@workflow(name="with_finally")
async def with_finally(ctx: Context, _: Any) -> Any:
    try:
        return await ctx.wait_for_signal("go")
    finally:
        FINALLY.append(ctx.run_id)
        # Hostile cleanup code: it swallows even the BaseException that stops it.
        with contextlib.suppress(BaseException):
            ctx.now()
        with contextlib.suppress(BaseException):
            await ctx.step("cleanup", cleanup_body, ctx.run_id)
        with contextlib.suppress(BaseException):
            await ctx.emit_event("bye")


async def test_finally_blocks_on_eviction_write_nothing(make_rt: MakeRuntime) -> None:
    BODIES.clear()
    FINALLY.clear()

    async def history(run_id: str) -> list[tuple[int, str, str]]:
        return [(e.seq, e.kind, e.name) for e in (await rt.get_run(run_id)).history]

    async with make_rt(with_finally, sticky_cache=1) as rt:
        first = await rt.trigger(with_finally, None)
        sticky = rt.executor.sticky
        await until(lambda: first.run_id in sticky, "first run cached")
        before = await history(first.run_id)
        second = await rt.trigger(with_finally, None)
        # The second suspension evicts the first (sticky_cache=1): its finally runs.
        await until(lambda: second.run_id in sticky, "second run cached")
        await until(lambda: first.run_id in FINALLY, "the evicted coroutine's finally ran")
        await asyncio.sleep(0.1)  # let anything it might have written reach the store
        after = await history(first.run_id)
        assert BODIES == [], "a step body ran in the finally of an evicted coroutine"
        assert after == before, "the finally of an evicted coroutine wrote to history"
        assert (await first.status()) == "suspended"
        # The run itself is intact: woken, it replays and its finally runs for real, once.
        await rt.signal(first.run_id, "go", "ok")
        assert await first.result(timeout=10) == "ok"
        assert [first.run_id] == BODIES
        kinds = [kind for _, kind, _ in await history(first.run_id)]
        assert kinds.count("step_completed") == 1 and "event_emitted" in kinds, kinds
