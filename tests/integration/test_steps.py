"""Steps, retries, triggering, validation and inspection on real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from durable import (
    Context,
    NonDeterminismError,
    RetryPolicy,
    RunNotFound,
    SerializationError,
    StepFailed,
    ValidationError,
    WorkflowFailed,
    WorkflowNotFound,
    workflow,
)

from .conftest import MakeRuntime

FAST = RetryPolicy(
    max_attempts=3, initial_interval="20ms", backoff_coefficient=2.0, maximum_interval="100ms"
)


class Order(msgspec.Struct):
    order_id: int
    amount: int


async def test_sync_and_async_steps_roundtrip_values(make_rt: MakeRuntime) -> None:
    calls: list[str] = []

    def sync_add(a: int, b: int) -> tuple[int, int]:
        calls.append("sync")
        return (a + b, a * b)

    async def async_mul(a: int, *, factor: int) -> int:
        calls.append("async")
        return a * factor

    @workflow
    async def wf(ctx: Context, inp: Any) -> Any:
        pair = await ctx.step("add", sync_add, 2, 3)
        prod = await ctx.step(async_mul, pair[0], factor=10)
        return {"pair": pair, "prod": prod, "inp": inp}

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf, {"k": [1, 2]})
        out = await h.result(timeout=10)
        assert out == {"pair": [5, 6], "prod": 50, "inp": {"k": [1, 2]}}
        assert calls == ["sync", "async"]
        info = await rt.get_run(h.run_id)
        assert info.status == "completed"
        assert [(e.kind, e.name) for e in info.history] == [
            ("step_completed", "add"),
            ("step_completed", "async_mul"),
            ("run_completed", ""),
        ]
        assert info.history[0].payload == [5, 6]


async def test_idempotency_key_and_run_id_return_existing_run(make_rt: MakeRuntime) -> None:
    @workflow
    async def noop(ctx: Context, inp: Any) -> Any:
        return inp

    async with make_rt(noop, worker=False) as rt:
        a = await rt.trigger(noop, 1, idempotency_key="k1")
        b = await rt.trigger(noop, 2, idempotency_key="k1")
        assert a.run_id == b.run_id and a.created and not b.created
        c = await rt.trigger(noop, 3, run_id="my-run")
        d = await rt.trigger("noop", 4, run_id="my-run")
        assert c.run_id == d.run_id == "my-run"
        assert len(await rt.list_runs()) == 2
        assert (await rt.get_run("my-run")).input == 3


async def test_schema_validation_rejects_and_writes_nothing(make_rt: MakeRuntime) -> None:
    seen: list[Any] = []

    @workflow(schema=Order)
    async def process(ctx: Context, order: Order) -> int:
        seen.append(order)
        return order.amount * 2

    async with make_rt(process) as rt:
        with pytest.raises(ValidationError, match="process"):
            await rt.trigger(process, {"order_id": "x", "amount": 1})
        with pytest.raises(ValidationError):
            await rt.trigger(process, {"order_id": 1})
        assert await rt.list_runs() == []
        h = await rt.trigger(process, {"order_id": 1, "amount": 21})
        assert await h.result(timeout=10) == 42
        assert isinstance(seen[0], Order)
        h2 = await rt.trigger(process, Order(2, 5))
        assert await h2.result(timeout=10) == 10


async def test_unknown_workflow_and_run(make_rt: MakeRuntime) -> None:
    async with make_rt(worker=False) as rt:
        with pytest.raises(WorkflowNotFound, match="nope"):
            await rt.trigger("nope", {})
        with pytest.raises(RunNotFound, match="missing"):
            await rt.get_run("missing")
        with pytest.raises(RunNotFound):
            await rt.handle("missing").status()


async def test_retries_record_each_failed_attempt(make_rt: MakeRuntime) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError(f"try {len(attempts)}")
        return "ok"

    @workflow(retry_policy=FAST)
    async def wf(ctx: Context, _: Any) -> str:
        result: str = await ctx.step("flaky", flaky)
        return result

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf, None)
        assert await h.result(timeout=10) == "ok"
        info = await rt.get_run(h.run_id)
        kinds = [e.kind for e in info.history]
        assert kinds == ["step_failed", "step_failed", "step_completed", "run_completed"]
        assert info.history[0].payload["error_type"] == "ConnectionError"
        assert info.history[1].payload["attempt"] == 2
        assert len(attempts) == 3


async def test_exhausted_retries_raise_step_failed_catchable(make_rt: MakeRuntime) -> None:
    def broken() -> None:
        raise RuntimeError("card declined")

    @workflow(retry_policy=FAST)
    async def wf(ctx: Context, _: Any) -> Any:
        try:
            await ctx.step("charge", broken)
        except StepFailed as exc:
            text = f"fallback after {exc.step}: {exc.error_message}"
            return await ctx.step("fallback", lambda: text)
        return "unreachable"

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf, None)
        assert await h.result(timeout=10) == "fallback after charge: card declined"
        info = await rt.get_run(h.run_id)
        failed = [e for e in info.history if e.kind == "step_failed"]
        assert len(failed) == 3 and failed[-1].payload["final"] is True


async def test_uncaught_step_failure_fails_run_naming_step(make_rt: MakeRuntime) -> None:
    def broken() -> None:
        raise KeyError("sku-9")

    @workflow(
        retry_policy=RetryPolicy(max_attempts=5, initial_interval="10ms", non_retryable=[KeyError])
    )
    async def wf(ctx: Context, _: Any) -> Any:
        await ctx.step("reserve", broken)

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf, None)
        with pytest.raises(WorkflowFailed, match="reserve") as info:
            await h.result(timeout=10)
        assert "KeyError" in (info.value.error or "")
        run = await rt.get_run(h.run_id)
        assert run.status == "failed"
        assert run.error is not None and "StepFailed" in run.error and "'reserve'" in run.error
        # non-retryable: exactly one attempt recorded
        assert [e.kind for e in run.history].count("step_failed") == 1


async def test_per_step_retry_policy_overrides_default(make_rt: MakeRuntime) -> None:
    count = 0

    def fails() -> None:
        nonlocal count
        count += 1
        raise ValueError("no")

    @workflow(retry_policy=FAST)
    async def wf(ctx: Context, _: Any) -> Any:
        await ctx.step("once", fails, retry=RetryPolicy(max_attempts=1))

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf, None)
        with pytest.raises(WorkflowFailed):
            await h.result(timeout=10)
        assert count == 1


async def test_unencodable_result_fails_step_without_retry(make_rt: MakeRuntime) -> None:
    count = 0

    def weird() -> object:
        nonlocal count
        count += 1
        return object()

    @workflow(retry_policy=FAST)
    async def wf(ctx: Context, _: Any) -> Any:
        try:
            await ctx.step("weird", weird)
        except StepFailed as exc:
            assert isinstance(exc.__cause__, SerializationError)
            return exc.error_type
        return None

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf, None)
        assert await h.result(timeout=10) == "SerializationError"
        assert count == 1
        info = await rt.get_run(h.run_id)
        assert [e.kind for e in info.history] == ["step_failed", "run_completed"]
        assert "weird" in info.history[0].payload["message"]


async def test_step_timeout_counts_as_failed_attempt(make_rt: MakeRuntime) -> None:
    async def slow() -> None:
        await asyncio.sleep(5)

    @workflow
    async def wf(ctx: Context, _: Any) -> Any:
        await ctx.step(
            "slow", slow, timeout="50ms", retry=RetryPolicy(max_attempts=2, initial_interval="10ms")
        )

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf, None)
        with pytest.raises(WorkflowFailed, match="TimeoutError"):
            await h.result(timeout=10)


async def test_gather_over_ctx_calls_replays_deterministically(make_rt: MakeRuntime) -> None:
    counts: dict[str, int] = {}

    async def work(tag: str, delay: float) -> str:
        counts[tag] = counts.get(tag, 0) + 1
        await asyncio.sleep(delay)
        return tag.upper()

    @workflow
    async def wf(ctx: Context, _: Any) -> Any:
        first = await asyncio.gather(
            ctx.step("a", work, "a", 0.05),
            ctx.step("b", work, "b", 0.0),
            ctx.step("c", work, "c", 0.02),
        )
        await ctx.sleep("pause", "100ms")
        second = await ctx.parallel([ctx.step("d", work, "d", 0.01), ctx.step("e", work, "e", 0.0)])
        return [*first, *second]

    # sticky_cache=0: the sleep evicts the coroutine, so the second half runs after a replay.
    async with make_rt(wf, sticky_cache=0) as rt:
        h = await rt.trigger(wf, None)
        assert await h.result(timeout=10) == ["A", "B", "C", "D", "E"]
        assert counts == {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}
        info = await rt.get_run(h.run_id)
        by_pos = {e.pos: e.name for e in info.history if e.kind == "step_completed"}
        assert by_pos == {0: "a", 1: "b", 2: "c", 4: "d", 5: "e"}


async def test_nondeterminism_parks_run_with_history_intact(make_rt: MakeRuntime) -> None:
    @workflow(name="changing")
    async def v_old(ctx: Context, _: Any) -> Any:
        await ctx.step("first", lambda: 1)
        return await ctx.wait_for_signal("go")

    @workflow(name="changing")
    async def v_new(ctx: Context, _: Any) -> Any:
        try:
            await ctx.step("renamed", lambda: 1)
        except NonDeterminismError:
            return "swallowed"  # catching it must not save the run
        return await ctx.wait_for_signal("go")

    async with make_rt(v_old) as rt:
        h = await rt.trigger(v_old, None)
        for _ in range(100):
            if await h.status() == "suspended":
                break
            await asyncio.sleep(0.05)
        assert await h.status() == "suspended"
        before = await rt.store.load_events(h.run_id)
    async with make_rt(v_new) as rt:
        h = rt.handle(h.run_id)
        await rt.signal(h.run_id, "go", "x")
        with pytest.raises(WorkflowFailed, match="NonDeterminismError"):
            await h.result(timeout=10)
        info = await rt.get_run(h.run_id)
        assert info.status == "failed"
        assert info.error is not None
        assert "'renamed'" in info.error and "'first'" in info.error and "seq 1" in info.error
        after = await rt.store.load_events(h.run_id)
    assert before == after and before


async def test_removed_operation_is_detected(make_rt: MakeRuntime) -> None:
    @workflow(name="shrinking")
    async def v_old(ctx: Context, _: Any) -> Any:
        await ctx.step("one", lambda: 1)
        await ctx.step("two", lambda: 2)
        await ctx.wait_for_signal("go")
        return "done"

    @workflow(name="shrinking")
    async def v_new(ctx: Context, _: Any) -> Any:
        await ctx.step("one", lambda: 1)
        return "done"

    async with make_rt(v_old) as rt:
        h = await rt.trigger(v_old, None)
        for _ in range(100):
            if await h.status() == "suspended":
                break
            await asyncio.sleep(0.05)
    async with make_rt(v_new) as rt:
        h = rt.handle(h.run_id)
        await rt.signal(h.run_id, "go")
        with pytest.raises(WorkflowFailed, match=r"NonDeterminismError.*position 1"):
            await h.result(timeout=10)


async def test_list_runs_filters_and_orders(make_rt: MakeRuntime) -> None:
    @workflow
    async def a(ctx: Context, _: Any) -> int:
        return 1

    @workflow
    async def b(ctx: Context, _: Any) -> int:
        return 2

    async with make_rt(a, b) as rt:
        ha = await rt.trigger(a, None)
        hb = await rt.trigger(b, None)
        await ha.result(timeout=10)
        await hb.result(timeout=10)
        hc = await rt.trigger(a, None, run_id="later")
        await hc.result(timeout=10)
        runs = await rt.list_runs()
        assert runs[0].run_id == "later"
        assert {r.run_id for r in await rt.list_runs(workflow="a")} == {ha.run_id, "later"}
        assert len(await rt.list_runs(status="completed", limit=2)) == 2
        assert all(r.history == [] for r in runs)
        with pytest.raises(ValidationError):
            await rt.list_runs(status="bogus")


async def test_durable_backoff_survives_restart(make_rt: MakeRuntime) -> None:
    tries: list[float] = []

    def flaky() -> str:
        tries.append(0.0)
        if len(tries) == 1:
            raise ConnectionError("first")
        return "ok"

    policy = RetryPolicy(max_attempts=3, initial_interval="1500ms")

    @workflow(retry_policy=policy)
    async def wf(ctx: Context, _: Any) -> str:
        result: str = await ctx.step("flaky", flaky)
        return result

    async with make_rt(wf) as rt:
        h = await rt.trigger(wf, None)
        for _ in range(100):
            info = await rt.get_run(h.run_id)
            if any(e.kind == "step_failed" for e in info.history):
                break
            await asyncio.sleep(0.02)
    failed = next(e for e in info.history if e.kind == "step_failed")
    retry_at = failed.payload["retry_at"]
    assert len(tries) == 1
    async with make_rt(wf) as rt:
        h = rt.handle(h.run_id)
        assert await h.result(timeout=10) == "ok"
        info = await rt.get_run(h.run_id)
    done = next(e for e in info.history if e.kind == "step_completed")
    assert len(tries) == 2
    assert done.created_at is not None and done.created_at >= retry_at
