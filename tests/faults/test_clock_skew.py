"""Clock skew (issue 16, item 3): leases, claims and timers follow the database's clock.

One runtime's host clock is made to run ahead of (or behind) the others' by injecting a
skewed wall `Clock`. Before the fix each worker compared lease ends and timer ends
written by another worker with its own clock: a worker 3 s ahead saw every 2 s lease
as expired (20 one-step runs executed 40 step bodies) and every 2 s timer as due
(a 2 s sleep ended after about 0.1 s). Elapsed time is measured with this process's
monotonic clock, which no skew touches.

1. A 2 s sleep started on a worker with a correct clock and resumed by a worker 3 s
   ahead lasts at least 2 s.
2. 20 one-step runs started on worker A (2 s lease) while worker B polls: with B 3 s
   ahead, or with A 3 s behind, each step body runs exactly once.
3. The skew is measured: one WARNING per skewed runtime, the figure in its worker row
   and in `durable runs show`'s explanation; a correct clock logs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durable import Context, workflow
from durable.clock import SystemClock
from durable.diagnostics import run_situation

from .conftest import MakeRuntime
from .harness import check_histories, report, wait_for


class SkewedClock(SystemClock):
    """This host's wall clock, `seconds` off (positive: ahead)."""

    def __init__(self, seconds: float) -> None:
        self.by = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.by


async def _status(db: Any, run_id: str) -> str | None:
    status: str | None = await db.fetchval("SELECT status FROM runs WHERE id = $1", run_id)
    return status


async def test_sleep_never_fires_early_on_a_worker_ahead(make_rt: MakeRuntime, db: Any) -> None:
    marks: dict[str, float] = {}

    def mark(name: str) -> str:
        marks[name] = time.monotonic()
        return name

    @workflow(name="napper")
    async def napper(ctx: Context, _: Any) -> Any:
        await ctx.step("before", mark, "before")
        await ctx.sleep("nap", "2s")
        return await ctx.step("after", mark, "after")

    # The timer starts on a worker whose clock is right; once the run is suspended
    # that worker stops, and one 3 s ahead resumes the run.
    async with make_rt(napper) as a:
        h = await a.trigger(napper, None)
        await wait_for(
            lambda: _has_status(db, h.run_id, "suspended"), timeout=10, what="the run to sleep"
        )
    async with make_rt(napper, clock=SkewedClock(3.0)) as ahead:
        assert await ahead.handle(h.run_id).result(timeout=30) == "after"
    slept = marks["after"] - marks["before"]
    report("clock_skew_sleep", skew_s=3.0, sleep_s=2.0, slept_s=round(slept, 3))
    assert slept >= 2.0, f"a 2 s sleep ended after {slept:.3f} s on a worker 3 s ahead"
    await check_histories(db)


async def _has_status(db: Any, run_id: str, status: str) -> bool:
    return await _status(db, run_id) == status


@pytest.mark.parametrize(
    ("starter_skew", "other_skew"),
    [pytest.param(0.0, 3.0, id="other-3s-ahead"), pytest.param(-3.0, 0.0, id="starter-3s-behind")],
)
async def test_leases_hold_between_skewed_workers(
    make_rt: MakeRuntime, db: Any, starter_skew: float, other_skew: float
) -> None:
    bodies: Counter[str] = Counter()

    async def work(run_id: str) -> str:
        bodies[run_id] += 1
        await asyncio.sleep(0.5)  # long enough for the other worker to poll (100 ms)
        return run_id

    @workflow(name="one_step")
    async def one_step(ctx: Context, _: Any) -> Any:
        return await ctx.step("work", work, ctx.run_id)

    async with (
        make_rt(one_step, clock=SkewedClock(starter_skew)) as a,
        make_rt(one_step, clock=SkewedClock(other_skew)) as b,
    ):
        handles = [await a.trigger(one_step, None) for _ in range(20)]
        outs = await asyncio.gather(*(b.handle(h.run_id).result(timeout=60) for h in handles))
    assert outs == [h.run_id for h in handles]
    executions = sum(bodies.values())
    report(
        "clock_skew_leases",
        starter_skew_s=starter_skew,
        other_skew_s=other_skew,
        lease_s=2.0,
        runs=20,
        step_executions=executions,
    )
    assert executions == 20 and set(bodies.values()) == {1}, (
        f"20 one-step runs executed {executions} step bodies"
    )
    await check_histories(db)


async def test_skew_is_measured_logged_and_shown(
    make_rt: MakeRuntime, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="durable.clock")

    @workflow(name="idle")
    async def idle(ctx: Context, _: Any) -> Any:
        await ctx.wait_for_signal("go")

    async with make_rt(idle, clock=SkewedClock(3.0)) as ahead, make_rt(idle) as right:
        await wait_for(
            lambda: _rows_with_skew(db, 2), timeout=10, what="both workers' rows with a skew"
        )
        skews = {
            r["id"]: r["clock_skew_s"]
            for r in await db.fetch("SELECT id, clock_skew_s FROM workers")
        }
        h = await right.trigger(idle, None)
        situation = await run_situation(right, h.run_id)
        # The skewed runtime's own notion of now is the database's.
        db_now = await db.fetchval("SELECT clock_timestamp()")
        lag = (db_now - ahead.clock.now()).total_seconds()
        await right.cancel(h.run_id)
        ahead_id, right_id = ahead.executor.owner, right.executor.owner
    warnings = [r.getMessage() for r in caplog.records if r.name == "durable.clock"]
    report(
        "clock_skew_measured",
        injected_s=3.0,
        measured_s=sorted(round(s, 3) for s in skews.values()),
        warnings=len(warnings),
    )
    assert len(warnings) == 1, warnings
    assert "s ahead of the database's" in warnings[0]
    assert abs(skews[ahead_id] - 3.0) < 0.5 and abs(skews[right_id]) < 0.5, skews
    assert any(f"worker {ahead_id}" in line and "ahead of" in line for line in situation)
    assert not any(f"worker {right_id}:" in line for line in situation)
    assert abs(lag) < 0.5, f"the skewed runtime's clock is {lag:.3f} s off the database's"


async def _rows_with_skew(db: Any, n: int) -> bool:
    found = await db.fetchval("SELECT count(*) FROM workers WHERE clock_skew_s IS NOT NULL")
    return bool(found >= n)


@pytest.mark.faults
async def test_three_skewed_workers_share_timers_and_leases(make_rt: MakeRuntime, db: Any) -> None:
    """Long form: 200 runs (step, 2 s sleep, step) over workers 3 s behind, right and
    3 s ahead, all triggering and claiming: every body once, no sleep shorter than 2 s."""
    n = 200
    bodies: Counter[tuple[str, str]] = Counter()
    marks: dict[tuple[str, str], float] = {}

    async def work(run_id: str, name: str) -> str:
        bodies[run_id, name] += 1
        marks.setdefault((run_id, name), time.monotonic())  # the first execution's
        await asyncio.sleep(0.2)
        return name

    @workflow(name="skewed_nap")
    async def skewed_nap(ctx: Context, _: Any) -> Any:
        await ctx.step("before", work, ctx.run_id, "before")
        await ctx.sleep("nap", "2s")
        return await ctx.step("after", work, ctx.run_id, "after")

    opts = {"concurrency": 100}
    async with (
        make_rt(skewed_nap, clock=SkewedClock(-3.0), **opts) as behind,
        make_rt(skewed_nap, **opts) as right,
        make_rt(skewed_nap, clock=SkewedClock(3.0), **opts) as ahead,
    ):
        workers = (behind, right, ahead)
        handles = [await workers[i % 3].trigger(skewed_nap, None) for i in range(n)]
        outs = await asyncio.gather(*(right.handle(h.run_id).result(timeout=120) for h in handles))
    assert outs == ["after"] * n
    executions = sum(bodies.values())
    slept = sorted(marks[h.run_id, "after"] - marks[h.run_id, "before"] for h in handles)
    report(
        "clock_skew_three_workers",
        runs=n,
        step_executions=executions,
        slept_s_min=round(slept[0], 3),
        slept_s_max=round(slept[-1], 3),
    )
    assert executions == 2 * n and set(bodies.values()) == {1}
    assert slept[0] >= 2.0, f"a 2 s sleep ended after {slept[0]:.3f} s"
    await check_histories(db)
