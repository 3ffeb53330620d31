"""TestRuntime: a virtual clock that jumps when the engine is idle, and `advance()`.

Assertions are on virtual time and on results, never on wall-clock durations: a
workflow sleeping 30 days can only finish inside the test's timeout if time skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durable import Context, RetryPolicy, Schedule, WorkflowCancelled, workflow
from durable.clock import SYSTEM_CLOCK
from durable.config import RuntimeConfig
from durable.store import MEMORY_URL
from durable.store.memory import MemoryStore
from durable.testing import TestRuntime, VirtualClock

START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


@workflow(name="long_sleep")
async def long_sleep(ctx: Context, _: Any) -> float:
    before = ctx.now()
    await ctx.sleep("month", "30d")
    return (ctx.now() - before).total_seconds()


@workflow(name="await_approval")
async def await_approval(ctx: Context, _: Any) -> Any:
    decision = await ctx.wait_for_signal("approve", timeout="7d")
    return {"decision": decision, "at": ctx.now().isoformat()}


TICKS: list[str] = []


def _note(when: str) -> str:
    TICKS.append(when)
    return when


@workflow(name="daily_report", schedules=[Schedule("0 6 * * *")])
async def daily_report(ctx: Context, _: Any) -> str:
    return await ctx.step("note", _note, ctx.now().isoformat())


ATTEMPTS: list[int] = []


def _flaky() -> str:
    ATTEMPTS.append(1)
    if len(ATTEMPTS) < 3:
        raise RuntimeError("not yet")
    return "ok"


@workflow(
    name="flaky",
    retry_policy=RetryPolicy(
        max_attempts=5, initial_interval="1h", backoff_coefficient=2.0, maximum_interval="1d"
    ),
)
async def flaky(ctx: Context, _: Any) -> Any:
    started = ctx.now()
    result = await ctx.step("flaky", _flaky)
    return {"result": result, "hours": (ctx.now() - started).total_seconds() / 3600}


@workflow(name="two_timers")
async def two_timers(ctx: Context, _: Any) -> list[str]:
    marks = []
    await ctx.sleep("first", "1h")
    marks.append(ctx.now().isoformat())
    await ctx.sleep("second", "2h")
    marks.append(ctx.now().isoformat())
    return marks


ALL = [long_sleep, await_approval, daily_report, flaky, two_timers]


@pytest.fixture
def store_kwargs(store_dsn: str, request: pytest.FixtureRequest) -> Callable[[], dict[str, Any]]:
    """Where TestRuntime keeps its data: every test here runs on PostgreSQL (the test's
    schema) and on the default, `memory://` (nothing passed)."""
    if store_dsn == MEMORY_URL:
        return lambda: {}
    schema = request.getfixturevalue("schema")
    return lambda: {"dsn": store_dsn, "schema": schema}


def _rt(store_kwargs: Callable[[], dict[str, Any]], **kw: Any) -> TestRuntime:
    return TestRuntime(workflows=ALL, start=START, **store_kwargs(), **kw)


async def test_clock_starts_at_start_and_stands_still(store_kwargs: Any) -> None:
    async with _rt(store_kwargs) as rt:
        assert rt.now() == START
        await rt.advance("90m")
        assert rt.now() == START + timedelta(minutes=90)


async def test_default_start_is_the_real_now(store_kwargs: Any) -> None:
    before = datetime.now(UTC)
    async with TestRuntime(workflows=ALL, **store_kwargs()) as rt:
        assert before <= rt.now() <= datetime.now(UTC)


async def test_thirty_day_sleep_finishes_by_skipping_time(store_kwargs: Any) -> None:
    async with _rt(store_kwargs) as rt:
        h = await rt.trigger(long_sleep)
        assert await h.result(timeout=10) == 30 * 86400
        assert rt.now() == START + timedelta(days=30)
        info = await rt.get_run(h.run_id)
        fired = [e for e in info.history if e.kind == "timer_fired"]
        assert fired[0].created_at == START + timedelta(days=30)


async def test_signal_timeout_of_seven_days(store_kwargs: Any) -> None:
    async with _rt(store_kwargs) as rt:
        h = await rt.trigger(await_approval)
        result = await h.result(timeout=10)
        assert result == {"decision": None, "at": (START + timedelta(days=7)).isoformat()}
        kinds = [e.kind for e in (await rt.get_run(h.run_id)).history]
        assert "signal_timed_out" in kinds


async def test_signal_before_timeout_wins(store_kwargs: Any) -> None:
    async with _rt(store_kwargs) as rt:
        h = await rt.trigger(await_approval)
        await rt.advance("2d")
        assert await h.status() == "suspended"
        await rt.signal(h.run_id, "approve", {"ok": True})
        result = await h.result(timeout=10)
        assert result == {"decision": {"ok": True}, "at": (START + timedelta(days=2)).isoformat()}


async def test_daily_schedule_three_ticks(store_kwargs: Any) -> None:
    TICKS.clear()
    async with _rt(store_kwargs) as rt:
        await rt.advance("3d")
        assert rt.now() == START + timedelta(days=3)
        runs = await rt.list_runs(workflow="daily_report", status="completed")
    day = timedelta(days=1)
    first = START.replace(hour=6) + day  # 06:00 the next morning
    assert sorted(TICKS) == [(first + i * day).isoformat() for i in range(3)]
    assert len(runs) == 3


async def test_schedule_ticks_by_time_skipping_while_awaiting(store_kwargs: Any) -> None:
    TICKS.clear()
    async with _rt(store_kwargs) as rt:
        # The awaited run sleeps 30 days; time skipping passes every daily tick on the
        # way, and each one fires at its own time.
        h = await rt.trigger(long_sleep)
        await h.result(timeout=10)
        runs = await rt.list_runs(workflow="daily_report", status="completed")
    assert len(runs) == 30
    assert len(TICKS) == 30


async def test_advance_fires_what_became_due_and_nothing_early(store_kwargs: Any) -> None:
    async with _rt(store_kwargs) as rt:
        h = await rt.trigger(two_timers)
        await rt.advance("59m")
        info = await rt.get_run(h.run_id)
        assert info.status == "suspended"
        assert [e.kind for e in info.history] == ["timer_started"]
        await rt.advance("1m")  # exactly due now
        info = await rt.get_run(h.run_id)
        kinds = [e.kind for e in info.history]
        assert kinds == ["timer_started", "timer_fired", "recorded", "timer_started"]
        assert info.status == "suspended"
        await rt.advance(timedelta(hours=1, minutes=59, seconds=59))
        assert await h.status() == "suspended"
        # One second later the second timer is due; it fires at its own time, not at the end.
        await rt.advance("10h")
        assert await h.status() == "completed"
        assert await h.result(timeout=5) == [
            (START + timedelta(hours=1)).isoformat(),
            (START + timedelta(hours=3)).isoformat(),
        ]
        assert rt.now() == START + timedelta(hours=12, minutes=59, seconds=59)


async def test_retry_backoffs_are_timers(store_kwargs: Any) -> None:
    ATTEMPTS.clear()
    async with _rt(store_kwargs) as rt:
        h = await rt.trigger(flaky)
        assert await h.result(timeout=10) == {"result": "ok", "hours": 3.0}  # 1h + 2h
    assert len(ATTEMPTS) == 3


async def test_nothing_timed_means_no_skip(store_kwargs: Any) -> None:
    @workflow(name="forever")
    async def forever(ctx: Context, _: Any) -> Any:
        return await ctx.wait_for_signal("never")

    async with TestRuntime(workflows=[forever], start=START, **store_kwargs()) as rt:
        h = await rt.trigger(forever)
        with pytest.raises(TimeoutError):
            await h.result(timeout=0.5)
        assert rt.now() == START


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        TestRuntime(start=datetime(2030, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(TypeError, match="worker"):
        TestRuntime(worker=True)


@workflow(name="nap")
async def nap(ctx: Context, days: int) -> str:
    await ctx.sleep("nap", f"{days}d")
    return ctx.now().isoformat()


@workflow(name="supervisor")
async def supervisor(ctx: Context, _: Any) -> Any:
    woke = await ctx.child(nap, 2)
    hook = await ctx.create_hook("confirm")
    answer = await hook.wait(timeout="3d")
    return {"child_woke": woke, "answer": answer, "done": ctx.now().isoformat()}


async def test_children_and_hook_timeouts_skip_time(store_kwargs: Any) -> None:
    async with TestRuntime(workflows=[nap, supervisor], start=START, **store_kwargs()) as rt:
        h = await rt.trigger(supervisor)
        assert await h.result(timeout=10) == {
            "child_woke": (START + timedelta(days=2)).isoformat(),
            "answer": None,
            "done": (START + timedelta(days=5)).isoformat(),
        }


async def test_cancel_and_sweep_under_the_virtual_clock(store_kwargs: Any) -> None:
    async with TestRuntime(workflows=[nap], start=START, **store_kwargs()) as rt:
        h = await rt.trigger(nap, 1)
        await rt.sweep()  # (the background driver may have taken it first)
        assert await h.status() == "suspended"  # at its timer, which is not due
        assert await rt.sweep() == 0
        await rt.cancel(h.run_id)
        with pytest.raises(WorkflowCancelled):
            await h.result(timeout=5)
        assert rt.now() == START


async def test_from_config_and_a_given_store() -> None:
    # Runtime.from_config skips __init__: the subclass still gets its clock, its driver
    # state and worker=False (a worker's config says worker=True).
    rt = TestRuntime.from_config(
        RuntimeConfig(worker=True), workflows=[nap], clock=VirtualClock(START)
    )
    assert isinstance(rt, TestRuntime)
    assert (rt.worker, rt.now(), rt.clock) == (False, START, rt.virtual_clock)
    async with rt:
        h = await rt.trigger(nap, 3)
        assert await h.result(timeout=10) == (START + timedelta(days=3)).isoformat()
    with pytest.raises(TypeError, match="VirtualClock"):
        TestRuntime.from_config(RuntimeConfig(), clock=SYSTEM_CLOCK)
    store = MemoryStore()
    async with TestRuntime(workflows=[nap], start=START, store=store) as rt:
        h = await rt.trigger(nap, 1)
        assert await h.result(timeout=10) == (START + timedelta(days=1)).isoformat()
    assert (await store.get_run(h.run_id)) is not None  # it ran on the given store
