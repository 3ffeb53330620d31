"""The seed features closed by issue 13 (dynamic retry, on_error, unnamed sleeps, "1y",
context_provider) end to end on real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import durable
from durable import (
    Context,
    ExecutionInfo,
    RetryPolicy,
    Runtime,
    StepFailed,
    WorkflowFailed,
    workflow,
)

from .conftest import MakeRuntime


async def wait_status(rt: Runtime, run_id: str, status: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while (await rt.get_run(run_id)).status != status:
            await asyncio.sleep(0.02)


def step_events(info: Any, name: str) -> list[tuple[str, Any]]:
    return [(e.kind, e.payload) for e in info.history if e.name == name]


# -- 1. dynamic retry: RetryPolicy(should_retry=...) ----------------------------------------


async def test_should_retry_decides_and_sets_the_delay_per_attempt(make_rt: MakeRuntime) -> None:
    seen: list[tuple[str, int]] = []
    errors = iter(["flaky", "flaky", "FATAL"])

    def should_retry(error: Exception, attempt: int) -> Any:
        seen.append((str(error), attempt))
        return False if str(error) == "FATAL" else f"{attempt * 30}ms"

    def op() -> None:
        raise ValueError(next(errors))

    # A backoff of one hour: the run only finishes in time if should_retry's delays rule.
    policy = RetryPolicy(max_attempts=10, initial_interval="1h", should_retry=should_retry)

    @workflow(retry_policy=policy)
    async def dyn(ctx: Context, _: Any) -> str:
        try:
            await ctx.step("op", op)
        except StepFailed as exc:
            return exc.error_message
        return "unreachable"

    async with make_rt(dyn) as rt:
        h = await rt.trigger(dyn, None)
        assert await h.result(timeout=10) == "FATAL"
        assert seen == [("flaky", 1), ("flaky", 2), ("FATAL", 3)]
        failures = [p for kind, p in step_events(await rt.get_run(h.run_id), "op")]
        assert [f["final"] for f in failures] == [False, False, True]
        first, second = (f["retry_at"] for f in failures[:2])
        assert first is not None and second is not None


async def test_should_retry_true_uses_backoff_and_max_attempts_still_bounds(
    make_rt: MakeRuntime,
) -> None:
    calls: list[int] = []

    async def should_retry(error: Exception, attempt: int) -> bool:  # async is awaited
        calls.append(attempt)
        return True

    def op() -> None:
        raise ValueError("always")

    policy = RetryPolicy(max_attempts=3, initial_interval="10ms", should_retry=should_retry)

    @workflow
    async def bounded(ctx: Context, _: Any) -> None:
        await ctx.step("op", op, retry=policy)

    async with make_rt(bounded) as rt:
        h = await rt.trigger(bounded, None)
        with pytest.raises(WorkflowFailed, match="after 3 attempt"):
            await h.result(timeout=10)
        # Not asked after the last attempt: nothing it answers could retry it.
        assert calls == [1, 2]


async def test_should_retry_raising_fails_the_step_naming_it(make_rt: MakeRuntime) -> None:
    def should_retry(error: Exception, attempt: int) -> bool:
        raise KeyError("policy bug")

    def op() -> None:
        raise ValueError("boom")

    @workflow(retry_policy=RetryPolicy(should_retry=should_retry))
    async def broken(ctx: Context, _: Any) -> None:
        await ctx.step("op", op)

    async with make_rt(broken) as rt:
        h = await rt.trigger(broken, None)
        with pytest.raises(
            WorkflowFailed, match=r"ValueError: boom \(should_retry raised KeyError"
        ):
            await h.result(timeout=10)
        failures = step_events(await rt.get_run(h.run_id), "op")
        assert len(failures) == 1 and failures[0][1]["final"] is True


# -- 11. step on_error ----------------------------------------------------------------------


async def test_on_error_is_called_after_each_failed_attempt(make_rt: MakeRuntime) -> None:
    calls: list[tuple[str, str, int]] = []
    attempts = iter([ValueError("one"), ValueError("two"), None])

    def op() -> str:
        exc = next(attempts)
        if exc is not None:
            raise exc
        return "ok"

    def sync_alert(error: Exception, attempt: int) -> None:
        calls.append(("sync", str(error), attempt))

    async def async_alert(error: Exception, attempt: int) -> None:
        calls.append(("async", str(error), attempt))

    fast = RetryPolicy(max_attempts=3, initial_interval="10ms")

    @workflow
    async def alerted(ctx: Context, _: Any) -> list[str]:
        a = await ctx.step("a", op, retry=fast, on_error=sync_alert)
        try:
            await ctx.step("b", lambda: 1 / 0, retry=fast, on_error=async_alert)
        except StepFailed:
            return [a, "b failed"]
        return [a]

    async with make_rt(alerted) as rt:
        h = await rt.trigger(alerted, None)
        assert await h.result(timeout=10) == ["ok", "b failed"]
        assert calls == [
            ("sync", "one", 1),
            ("sync", "two", 2),
            ("async", "division by zero", 1),
            ("async", "division by zero", 2),
            ("async", "division by zero", 3),
        ]
        info = await rt.get_run(h.run_id)
        assert [k for k, _ in step_events(info, "a")] == [
            "step_failed",
            "step_failed",
            "step_completed",
        ]


async def test_on_error_raising_is_logged_and_changes_nothing(
    make_rt: MakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    first = [True]

    def op() -> str:
        if first.pop() if first else False:
            raise ValueError("transient")
        return "done"

    def bad_alert(error: Exception, attempt: int) -> None:
        raise RuntimeError("alerting is down")

    @workflow
    async def resilient(ctx: Context, _: Any) -> str:
        return str(
            await ctx.step("op", op, retry=RetryPolicy(initial_interval="10ms"), on_error=bad_alert)
        )

    caplog.set_level(logging.WARNING, logger="durable.workflow")
    async with make_rt(resilient) as rt:
        h = await rt.trigger(resilient, None)
        assert await h.result(timeout=10) == "done"
    assert any("on_error of step 'op' raised" in r.getMessage() for r in caplog.records)


async def test_bad_on_error_is_a_type_error_and_writes_nothing(make_rt: MakeRuntime) -> None:
    @workflow
    async def wrong(ctx: Context, _: Any) -> str:
        try:
            await ctx.step("op", lambda: 1, on_error="alert")
        except TypeError as exc:
            return str(exc)
        return "accepted"

    async with make_rt(wrong) as rt:
        h = await rt.trigger(wrong, None)
        assert "on_error must be callable" in await h.result(timeout=10)
        assert [e.kind for e in (await rt.get_run(h.run_id)).history] == ["run_completed"]


# -- 13. unnamed sleeps, and 4. "1y" ----------------------------------------------------------


async def test_sleep_with_only_a_duration_is_named_sleep(make_rt: MakeRuntime) -> None:
    @workflow
    async def naps(ctx: Context, _: Any) -> str:
        await ctx.sleep("20ms")  # one string argument: a duration, not a name
        await ctx.sleep(0.02)
        await ctx.sleep({"amount": 20, "unit": "milliseconds"})
        await ctx.sleep("named", "20ms")
        return "rested"

    async with make_rt(naps) as rt:
        h = await rt.trigger(naps, None)
        assert await h.result(timeout=10) == "rested"
        started = [
            e.name for e in (await rt.get_run(h.run_id)).history if e.kind == "timer_started"
        ]
        assert started == ["sleep", "sleep", "sleep", "named"]


async def test_one_argument_sleep_that_is_no_duration_says_so_and_writes_nothing(
    make_rt: MakeRuntime,
) -> None:
    @workflow
    async def confused(ctx: Context, _: Any) -> None:
        await ctx.sleep("pause")

    async with make_rt(confused) as rt:
        h = await rt.trigger(confused, None)
        with pytest.raises(WorkflowFailed, match=r"one argument takes a duration"):
            await h.result(timeout=10)
        assert [e.kind for e in (await rt.get_run(h.run_id)).history] == ["run_failed"]


async def test_a_one_year_sleep_suspends_until_365_days_later(make_rt: MakeRuntime) -> None:
    @workflow
    async def yearly(ctx: Context, _: Any) -> None:
        await ctx.sleep("1y")

    async with make_rt(yearly) as rt:
        before = datetime.now(UTC)
        h = await rt.trigger(yearly, None)
        await wait_status(rt, h.run_id, "suspended")
        (pending,) = (await rt.get_run(h.run_id)).pending
        until = pending["until"]
        assert pending["name"] == "sleep"
        assert before + timedelta(days=365) <= until <= datetime.now(UTC) + timedelta(days=365)
        await rt.cancel(h.run_id)


# -- 3. Runtime(context_provider=...) -----------------------------------------------------------


class Services:
    def __init__(self, generation: int, run_id: str) -> None:
        self.generation = generation
        self.run_id = run_id


def sync_step_reads_context() -> list[Any]:
    services = durable.current_context()
    return [services.generation, services.run_id, threading.current_thread().name]


async def async_step_reads_context() -> int:
    return int(durable.current_context().generation)


@workflow
async def uses_services(ctx: Context, inp: Any) -> dict[str, Any]:
    first = ctx.context.generation
    from_steps = await ctx.step("sync", sync_step_reads_context)
    await ctx.step("async", async_step_reads_context)
    await ctx.wait_for_signal("go")
    return {
        "first": first,
        "after_signal": ctx.context.generation,
        "sync_step": from_steps[:2],
        "in_thread": from_steps[2] != threading.main_thread().name,
        "async_step": await ctx.step("async2", async_step_reads_context),
    }


async def test_context_provider_builds_ctx_context_reachable_from_steps(
    make_rt: MakeRuntime,
) -> None:
    infos: list[ExecutionInfo] = []

    def provider(info: ExecutionInfo) -> Services:
        infos.append(info)
        return Services(1, info.run_id)

    async with make_rt(uses_services, context_provider=provider) as rt:
        h = await rt.trigger(uses_services, {"k": 1})
        await wait_status(rt, h.run_id, "suspended")
        await rt.signal(h.run_id, "go")
        out = await h.result(timeout=10)
    assert out == {
        "first": 1,
        "after_signal": 1,  # a sticky resume keeps the execution and its context
        "sync_step": [1, h.run_id],
        "in_thread": True,
        "async_step": 1,
    }
    assert len(infos) == 1
    assert (infos[0].run_id, infos[0].workflow, infos[0].version) == (
        h.run_id,
        "uses_services",
        "1",
    )
    assert infos[0].input == {"k": 1} and infos[0].parent_run_id is None


async def test_context_is_rebuilt_on_each_execution_and_never_recorded(
    make_rt: MakeRuntime,
) -> None:
    generation = [0]

    async def provider(info: ExecutionInfo) -> Services:  # async providers are awaited
        generation[0] += 1
        return Services(generation[0], info.run_id)

    async with make_rt(uses_services, context_provider=provider) as rt:
        h = await rt.trigger(uses_services, None)
        await wait_status(rt, h.run_id, "suspended")
    # A new process (runtime): the run is replayed, and its context built again.
    async with make_rt(uses_services, context_provider=provider) as rt:
        await rt.signal(h.run_id, "go")
        out = await rt.handle(h.run_id).result(timeout=10)
        history = (await rt.get_run(h.run_id)).history
    assert out["first"] == 2 and out["after_signal"] == 2 and out["async_step"] == 2
    assert out["sync_step"] == [1, h.run_id]  # recorded in the first execution
    assert generation[0] == 2
    assert "recorded" not in [e.kind for e in history]


async def test_without_provider_context_is_none_and_outside_a_run_an_error(
    make_rt: MakeRuntime,
) -> None:
    @workflow
    async def plain(ctx: Context, _: Any) -> list[Any]:
        return [ctx.context, await ctx.step("s", durable.current_context)]

    async with make_rt(plain) as rt:
        assert await (await rt.trigger(plain, None)).result(timeout=10) == [None, None]
    with pytest.raises(RuntimeError, match="outside a workflow run"):
        durable.current_context()


async def test_failing_provider_fails_the_run_naming_it(make_rt: MakeRuntime) -> None:
    def provider(info: ExecutionInfo) -> Any:
        raise ConnectionError("no database for services")

    async with make_rt(uses_services, context_provider=provider) as rt:
        h = await rt.trigger(uses_services, None)
        with pytest.raises(WorkflowFailed, match=r"context_provider failed .*ConnectionError"):
            await h.result(timeout=10)
        assert [e.kind for e in (await rt.get_run(h.run_id)).history] == ["run_failed"]


def test_context_provider_must_be_callable(dsn: str) -> None:
    with pytest.raises(TypeError, match="context_provider"):
        Runtime(dsn, context_provider={"db": 1})  # type: ignore[arg-type]


async def test_should_retry_and_on_error_are_not_called_again_on_replay(
    make_rt: MakeRuntime,
) -> None:
    asked: list[int] = []
    alerted: list[int] = []
    failures = iter([True, True, False])

    def should_retry(error: Exception, attempt: int) -> str:
        asked.append(attempt)
        return "200ms"  # long enough for the run to suspend between attempts

    def op() -> str:
        if next(failures):
            raise ValueError("not yet")
        return "done"

    executions: list[str] = []

    @workflow(retry_policy=RetryPolicy(should_retry=should_retry))
    async def replayed(ctx: Context, _: Any) -> str:
        executions.append(ctx.run_id)
        return str(
            await ctx.step("op", op, on_error=lambda error, attempt: alerted.append(attempt))
        )

    # No sticky cache: every resume after a suspension replays the history from the start.
    async with make_rt(replayed, sticky_cache=0) as rt:
        h = await rt.trigger(replayed, None)
        assert await h.result(timeout=10) == "done"
        info = await rt.get_run(h.run_id)
    assert len(executions) == 3  # the first execution and two replays
    assert asked == [1, 2]
    assert alerted == [1, 2]
    kinds = [e.kind for e in info.history]
    assert kinds.count("step_failed") == 2 and kinds.count("step_completed") == 1
