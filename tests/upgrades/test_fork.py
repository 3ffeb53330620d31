"""`Runtime.fork`: re-run a run from a step, on its version or a newer one, without
running the steps recorded before it again; children reused or restarted; bad input
writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from durable import (
    Context,
    RetryPolicy,
    RunNotFound,
    ValidationError,
    WorkflowFailed,
    WorkflowNotFound,
    workflow,
)

from .conftest import MakeRuntime

COUNTS: dict[str, int] = {}
ONCE = RetryPolicy(max_attempts=1)


def count(name: str, value: Any = None) -> Any:
    COUNTS[name] = COUNTS.get(name, 0) + 1
    return value if value is not None else name


def broken_ship(order: int) -> str:
    count("ship")
    raise RuntimeError("carrier API down")


@workflow(name="order", version="1", retry_policy=ONCE)
async def order_v1(ctx: Context, order: int) -> dict[str, Any]:
    charged = await ctx.step("charge", count, "charge", order * 10)
    stamp = ctx.uuid4()
    shipped = await ctx.step("ship", broken_ship, order)
    return {"charged": charged, "shipped": shipped, "stamp": str(stamp)}


@workflow(name="order", version="2", retry_policy=ONCE)
async def order_v2(ctx: Context, order: int) -> dict[str, Any]:
    charged = await ctx.step("charge", count, "charge", order * 10)
    stamp = ctx.uuid4()
    shipped = await ctx.step("ship", count, "ship", f"track-{order}")
    return {"charged": charged, "shipped": shipped, "stamp": str(stamp)}


async def test_fork_from_failed_step_onto_fixed_version(make_rt: MakeRuntime) -> None:
    COUNTS.clear()
    async with make_rt(order_v1, order_v2) as rt:
        h = await rt.trigger(order_v1, 7)
        with pytest.raises(WorkflowFailed, match="carrier API down"):
            await h.result(timeout=10)
        assert COUNTS == {"charge": 1, "ship": 1}
        original = await rt.get_run(h.run_id)
        stamp = next(e.payload for e in original.history if e.name == "uuid")

        fork = await rt.fork(h.run_id, version="2")  # default at: the failed step
        result = await fork.result(timeout=10)
        assert result == {"charged": 70, "shipped": "track-7", "stamp": stamp}
        # charge ran once in all: the fork replayed it; only ship ran again.
        assert COUNTS == {"charge": 1, "ship": 2}
        info = await rt.get_run(fork.run_id)
        assert info.forked_from == h.run_id
        assert info.version == "2"
        assert [(e.seq, e.kind, e.name) for e in info.history] == [
            (1, "step_completed", "charge"),
            (2, "recorded", "uuid"),
            (3, "step_completed", "ship"),
            (4, "run_completed", ""),
        ]
        # The original is untouched.
        assert (await rt.get_run(h.run_id)).history == original.history


async def test_fork_at_a_named_step_on_the_same_version(make_rt: MakeRuntime) -> None:
    COUNTS.clear()

    @workflow(name="pipeline", version="1")
    async def pipeline(ctx: Context, _: Any) -> list[str]:
        return [
            await ctx.step("extract", count, "extract"),
            await ctx.step("transform", count, "transform"),
            await ctx.step("load", count, "load"),
        ]

    async with make_rt(pipeline) as rt:
        h = await rt.trigger(pipeline, None)
        assert await h.result(timeout=10) == ["extract", "transform", "load"]
        fork = await rt.fork(h.run_id, at="transform")
        assert await fork.result(timeout=10) == ["extract", "transform", "load"]
        assert COUNTS == {"extract": 1, "transform": 2, "load": 2}
        assert (await rt.get_run(fork.run_id)).version == "1"


CHILD_RUNS: list[int] = []


@workflow(name="part", version="1", retry_policy=ONCE)
async def part(ctx: Context, n: int) -> int:
    CHILD_RUNS.append(n)
    if n == 2 and CHILD_RUNS.count(2) == 1:
        raise RuntimeError("part 2 broke")  # only on its first run
    return n * 100


@workflow(name="assembly", version="1", retry_policy=ONCE)
async def assembly(ctx: Context, _: Any) -> list[int]:
    a = await ctx.child(part, 1)
    try:
        b = await ctx.child(part, 2)
    except WorkflowFailed:
        b = -1
    packed = await ctx.step("pack", count, "pack", a + b)
    if b < 0:
        await ctx.step("fail", broken_ship, 0)
    return [a, b, packed]


async def test_fork_reuses_finished_children_and_restarts_others(make_rt: MakeRuntime) -> None:
    COUNTS.clear()
    CHILD_RUNS.clear()
    async with make_rt(part, assembly) as rt:
        h = await rt.trigger(assembly, None)
        with pytest.raises(WorkflowFailed):
            await h.result(timeout=10)
        assert CHILD_RUNS == [1, 2]
        fork = await rt.fork(h.run_id, at="pack")
        assert await fork.result(timeout=10) == [100, 200, 300]
        # Child 1 completed: its result is reused. Child 2 failed: started afresh.
        assert CHILD_RUNS == [1, 2, 2]
        kids = await rt.get_child_runs(fork.run_id)
        assert [k.status for k in kids] == ["completed"]
        assert kids[0].input == 2


async def test_fork_bad_input_writes_nothing(make_rt: MakeRuntime) -> None:
    COUNTS.clear()

    @workflow(name="fine", version="1")
    async def fine(ctx: Context, _: Any) -> str:
        return str(await ctx.step("only", count, "only"))

    async with make_rt(fine, order_v1) as rt:
        h = await rt.trigger(fine, None)
        await h.result(timeout=10)
        before = await rt.list_runs(limit=100)
        with pytest.raises(ValidationError, match=r"no step named 'nope'.*'only'"):
            await rt.fork(h.run_id, at="nope")
        with pytest.raises(ValidationError, match="no failed step"):
            await rt.fork(h.run_id)
        with pytest.raises(RunNotFound):
            await rt.fork("no-such-run")
        with pytest.raises(WorkflowNotFound, match="version '9'"):
            await rt.fork(h.run_id, at="only", version="9")
        with pytest.raises(ValueError, match="step name"):
            await rt.fork(h.run_id, at="a\x00b")
        assert await rt.list_runs(limit=100) == before
