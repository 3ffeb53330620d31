"""Failures keep their traceback; programming errors are not retried; the worker logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from durable import Context, RetryPolicy, StepFailed, WorkflowFailed, workflow
from durable.core.history import MAX_TRACEBACK, format_traceback

from .conftest import MakeRuntime

FAST = RetryPolicy(max_attempts=3, initial_interval="10ms", maximum_interval="20ms")


def _charge(order: dict[str, Any]) -> int:
    return order["amount"] + "1"  # type: ignore[no-any-return, operator]  # the bug


async def test_step_and_run_failures_keep_their_traceback(
    make_rt: MakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    @workflow(retry_policy=FAST)
    async def pay(ctx: Context, order: Any) -> Any:
        return await ctx.step("charge", _charge, order)

    caplog.set_level(logging.WARNING, logger="durable")
    async with make_rt(pay) as rt:
        h = await rt.trigger(pay, {"amount": 3})
        with pytest.raises(WorkflowFailed):
            await h.result(timeout=10)
        info = await rt.get_run(h.run_id)
    failed = [e for e in info.history if e.kind == "step_failed"]
    # TypeError is a programming error: one attempt, not three.
    assert len(failed) == 1
    assert failed[0].payload["final"] is True
    step_tb = failed[0].payload["traceback"]
    assert "Traceback (most recent call last)" in step_tb
    assert "_charge" in step_tb and 'order["amount"] + "1"' in step_tb
    assert info.traceback is not None
    assert "StepFailed" in info.traceback and "_charge" in info.traceback
    assert info.error is not None and info.error.startswith("StepFailed")
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "step 'charge' attempt 1 failed" in r.getMessage()
    ]
    assert len(warnings) == 1 and h.run_id in warnings[0].getMessage()
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and h.run_id in r.getMessage()
    ]
    assert errors and "failed" in errors[0].getMessage()


async def test_workflow_code_error_traceback(make_rt: MakeRuntime) -> None:
    @workflow
    async def broken(ctx: Context, inp: Any) -> Any:
        return inp["missing"]

    async with make_rt(broken) as rt:
        h = await rt.trigger(broken, {})
        with pytest.raises(WorkflowFailed, match="KeyError"):
            await h.result(timeout=10)
        info = await rt.get_run(h.run_id)
    assert info.traceback is not None
    assert 'inp["missing"]' in info.traceback and info.traceback.endswith("KeyError: 'missing'")


async def test_programming_errors_retry_when_the_policy_says_so(make_rt: MakeRuntime) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise AttributeError("not yet")
        return "ok"

    lenient = RetryPolicy(max_attempts=3, initial_interval="10ms", retry_programming_errors=True)

    @workflow
    async def wf(ctx: Context, _: Any) -> Any:
        return await ctx.step("flaky", flaky, retry=lenient)

    async with make_rt(wf) as rt:
        assert await (await rt.trigger(wf)).result(timeout=10) == "ok"
    assert len(calls) == 3


@pytest.mark.parametrize(
    "exc",
    [
        TypeError("t"),
        NameError("n"),
        AttributeError("a"),
        SyntaxError("s"),
        ImportError("i"),
        ModuleNotFoundError("m"),
    ],
)
def test_programming_errors_are_not_retryable_by_default(exc: Exception) -> None:
    assert not RetryPolicy().is_retryable(exc)
    assert RetryPolicy(retry_programming_errors=True).is_retryable(exc)
    assert RetryPolicy().is_retryable(ValueError("v"))
    assert RetryPolicy().is_retryable(KeyError("k"))


def test_serialization_error_is_not_retryable_by_default() -> None:
    from durable import SerializationError

    assert not RetryPolicy().is_retryable(SerializationError("x"))


def test_traceback_is_bounded_and_keeps_its_tail() -> None:
    def deep(n: int) -> None:
        if n == 0:
            raise ValueError("the bottom")
        deep(n - 1)

    try:
        deep(5)
    except ValueError as exc:
        full = format_traceback(exc)
        text = format_traceback(exc, limit=300)
    assert len(full) > 300 and MAX_TRACEBACK == 8192
    assert len(text) <= 300
    assert text.startswith("... (") and text.endswith("ValueError: the bottom")


def test_step_failed_carries_the_recorded_traceback() -> None:
    from durable.core.decide import step_attempt_failed, step_error

    try:
        raise OSError("disk")
    except OSError as exc:
        failure = step_attempt_failed(1, exc, RetryPolicy(max_attempts=1), _now())
    err = step_error("save", failure)
    assert isinstance(err, StepFailed)
    assert err.traceback is not None and "OSError: disk" in err.traceback


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_http_api_and_dashboard_show_the_traceback(make_rt: MakeRuntime) -> None:
    import httpx

    from durable.http import create_app

    @workflow
    async def crashes(ctx: Context, inp: Any) -> Any:
        return inp["missing"]

    async with make_rt(crashes) as rt:
        h = await rt.trigger(crashes, {})
        with pytest.raises(WorkflowFailed):
            await h.result(timeout=10)
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            body = (await c.get(f"/api/workflows/runs/{h.run_id}")).json()
            script = (await c.get("/static/app.js")).text
    assert 'inp["missing"]' in body["traceback"]
    assert "run.traceback" in script
