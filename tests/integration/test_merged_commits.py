"""A step's record shares the commit of the run's next command when that command writes
only to the database (RunExecution.defer): counted as the run's group-commit writes,
and, on PostgreSQL, as the transaction (xmin) of the rows written.

Each body also checks the rule that makes this safe: when a step body starts, the
records of the steps before it are durable (read back from the store).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from durable import Context, Runtime, WorkflowFailed, workflow

from .conftest import MakeRuntime

ROOT = Path(__file__).resolve().parents[2]


def count_writes(rt: Runtime) -> Counter[str]:
    """Count the group-commit writes submitted per run (one enqueue, one commit)."""
    writes: Counter[str] = Counter()
    committer: Any = rt.executor.committer
    real = committer.enqueue

    def counted(run_id: str, *args: Any, **kwargs: Any) -> Any:
        writes[run_id] += 1
        return real(run_id, *args, **kwargs)

    committer.enqueue = counted
    return writes


async def recorded_steps(rt: Runtime, run_id: str) -> list[str]:
    return [e.name for e in await rt.store.load_events(run_id) if e.kind == "step_completed"]


def kinds(info: Any) -> list[str]:
    return [e.kind for e in info.history]


async def test_one_step_run_is_one_commit_after_its_trigger(make_rt: MakeRuntime) -> None:
    bodies: list[str] = []

    async def body() -> int:
        bodies.append("s")
        return 7

    @workflow(name="merge_one")
    async def one(ctx: Context, _: Any) -> int:
        return int(await ctx.step("s", body)) + 1

    async with make_rt(one) as rt:
        writes = count_writes(rt)
        h = await rt.trigger(one)
        assert await h.result(timeout=10) == 8
        assert writes[h.run_id] == 1  # step_completed and run_completed together (was 2)
        assert kinds(await rt.get_run(h.run_id)) == ["step_completed", "run_completed"]
        assert bodies == ["s"]


@pytest.mark.postgres_only
async def test_step_and_run_end_share_one_transaction(make_rt: MakeRuntime, db: Any) -> None:
    async def body() -> str:
        return "ok"

    @workflow(name="merge_xmin")
    async def wf(ctx: Context, _: Any) -> str:
        a = await ctx.step("a", body)
        b = await ctx.step("b", body)
        return f"{a}{b}"

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf)
        assert await h.result(timeout=10) == "okok"
    rows = await db.fetch(
        "SELECT name, kind, xmin::text AS tx FROM events WHERE run_id = $1 ORDER BY seq", h.run_id
    )
    assert [(r["kind"], r["name"]) for r in rows] == [
        ("step_completed", "a"),
        ("step_completed", "b"),
        ("run_completed", ""),
    ]
    run_tx = await db.fetchval("SELECT xmin::text FROM runs WHERE id = $1", h.run_id)
    # "a" was committed before b's body ran; "b" with the run's end, in one transaction.
    assert rows[0]["tx"] != rows[1]["tx"]
    assert rows[1]["tx"] == rows[2]["tx"] == run_tx


async def test_each_body_starts_after_the_steps_before_it_are_durable(
    make_rt: MakeRuntime,
) -> None:
    seen: dict[str, list[str]] = {}

    @workflow(name="merge_seq")
    async def wf(ctx: Context, n: int) -> int:
        run_id = ctx.run_id

        async def body(name: str) -> str:
            seen[name] = await recorded_steps(rt, run_id)
            return name

        for i in range(n):
            await ctx.step(f"s{i}", body, f"s{i}")
        return n

    async with make_rt(wf) as rt:
        writes = count_writes(rt)
        h = await rt.trigger(wf, 4)
        assert await h.result(timeout=10) == 4
        assert seen == {"s0": [], "s1": ["s0"], "s2": ["s0", "s1"], "s3": ["s0", "s1", "s2"]}
        assert writes[h.run_id] == 4  # s0, s1, s2 each before the next body; s3 with the end
        assert await recorded_steps(rt, h.run_id) == ["s0", "s1", "s2", "s3"]


async def test_parallel_branches_never_start_a_body_before_earlier_records(
    make_rt: MakeRuntime,
) -> None:
    """gather: a record is kept back only while its step is the run's one operation;
    a body started after a sibling's step completed sees that step recorded."""
    seen: dict[str, list[str]] = {}
    finished: list[str] = []

    @workflow(name="merge_gather")
    async def wf(ctx: Context, _: Any) -> list[str]:
        run_id = ctx.run_id

        async def body(name: str, delay: float) -> str:
            seen[name] = await recorded_steps(rt, run_id)
            await asyncio.sleep(delay)
            finished.append(name)
            return name

        async def chain() -> str:
            await ctx.step("b1", body, "b1", 0.05)
            return str(await ctx.step("b2", body, "b2", 0.0))

        a, b = await ctx.parallel([ctx.step("a", body, "a", 0.0), chain()])
        c = await ctx.step("c", body, "c", 0.0)
        return [a, b, c]

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf)
        assert await h.result(timeout=10) == ["a", "b2", "c"]
        assert finished == ["a", "b1", "b2", "c"]
        assert seen["a"] == [] and seen["b1"] == []
        assert set(seen["b2"]) == {"a", "b1"}
        assert set(seen["c"]) == {"a", "b1", "b2"}
        assert sorted(await recorded_steps(rt, h.run_id)) == ["a", "b1", "b2", "c"]


async def test_step_record_rides_with_the_suspension_of_a_sleep(make_rt: MakeRuntime) -> None:
    calls: list[int] = []

    async def body() -> int:
        calls.append(1)
        return 1

    @workflow(name="merge_sleep")
    async def wf(ctx: Context, _: Any) -> int:
        await ctx.step("s", body)
        await ctx.sleep("nap", "50ms")
        return len(calls)

    async with make_rt(wf, sticky_cache=0) as rt:
        writes = count_writes(rt)
        h = await rt.trigger(wf)
        assert await h.result(timeout=10) == 1  # replayed after the sleep: no second body
        # step + suspension in one write, then timer_fired + the end (was 3 writes)
        assert writes[h.run_id] == 2
        assert kinds(await rt.get_run(h.run_id))[:2] == ["step_completed", "timer_started"]


async def test_failed_run_keeps_its_step_record_for_retry(make_rt: MakeRuntime) -> None:
    """The record kept back commits with run_failed: a retry does not run the body again."""
    calls: list[int] = []
    fail = [True]

    async def body() -> int:
        calls.append(1)
        return 5

    @workflow(name="merge_fail")
    async def wf(ctx: Context, _: Any) -> int:
        v = int(await ctx.step("s", body))
        if fail[0]:
            raise ValueError("after the step")
        return v

    async with make_rt(wf) as rt:
        writes = count_writes(rt)
        h = await rt.trigger(wf)
        with pytest.raises(WorkflowFailed):
            await h.result(timeout=10)
        assert writes[h.run_id] == 1
        assert kinds(await rt.get_run(h.run_id)) == ["step_completed", "run_failed"]
        fail[0] = False
        h2 = await rt.retry(h.run_id)
        assert await h2.result(timeout=10) == 5
        assert calls == [1]


async def test_branches_started_together_both_wait_for_the_record_kept_back(
    make_rt: MakeRuntime,
) -> None:
    """The first branch writes the record kept back; the second, starting while that
    write is in flight, waits for it too (RunExecution.settle) before its body."""
    seen: dict[str, list[str]] = {}

    @workflow(name="merge_fanout")
    async def wf(ctx: Context, _: Any) -> int:
        run_id = ctx.run_id

        async def body(name: str) -> str:
            seen[name] = await recorded_steps(rt, run_id)
            return name

        await ctx.step("x", body, "x")
        await ctx.parallel([ctx.step(f"p{i}", body, f"p{i}") for i in range(3)])
        return 3

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf)
        assert await h.result(timeout=10) == 3
        assert seen["x"] == []
        assert all("x" in seen[f"p{i}"] for i in range(3)), seen


@pytest.mark.postgres_only
async def test_killed_between_body_and_shared_commit_the_step_runs_once_more(
    make_rt: MakeRuntime, dsn: str, schema: str, db: Any
) -> None:
    """A real process killed after the body returned, before the commit its record waits
    for: nothing of the step was written, and the next worker runs the body once more
    (as a crash right after the body always did), then records it once."""
    from .merge_crash_app import dies_after_body

    def start(kill: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.merge_crash_app", dsn, schema, "2s", kill],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    async with make_rt(dies_after_body, worker=False) as rt:
        await db.execute("CREATE TABLE side_effects (id serial PRIMARY KEY, run_id text)")
        h = await rt.trigger(dies_after_body, {"dsn": dsn, "schema": schema})
        first = start("1")
        try:
            assert first.wait(timeout=30) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
        assert await db.fetchval("SELECT count(*) FROM side_effects") == 1
        assert await db.fetchval("SELECT count(*) FROM events WHERE run_id = $1", h.run_id) == 0
        second = start("0")
        try:
            assert await h.result(timeout=30) == "done"
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=15)
        assert await db.fetchval("SELECT count(*) FROM side_effects") == 2
        assert kinds(await rt.get_run(h.run_id)) == ["step_completed", "run_completed"]
