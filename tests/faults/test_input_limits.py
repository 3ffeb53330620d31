"""Small input faults (issue 16, items 10, 11, 12 and 15): each is refused at the call
with a clear error, or fails its run once with the reason recorded, instead of being
retried, crashing with a bare Python error, or burning a core."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

import durable.context
from durable import Context, Runtime, SerializationError, WorkflowFailed, workflow
from durable.durations import parse_duration

from .conftest import MakeRuntime
from .test_bad_input import nothing_written

DEPTH = 10_000


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


async def test_too_deep_results_fail_at_once_as_serialization_error(
    make_rt: MakeRuntime, db: Any
) -> None:
    """Item 10: a 10,000-deep step result fails the step at once (no retries), a
    10,000-deep workflow result fails the run once, and trigger() raises
    SerializationError for such an input, writing nothing."""
    calls: Counter[str] = Counter()

    async def deep_step() -> Any:
        calls["step"] += 1
        return nested(DEPTH)

    @workflow(name="deep_step_wf")
    async def deep_step_wf(ctx: Context, _: Any) -> Any:
        return await ctx.step("deep", deep_step)

    @workflow(name="deep_result_wf")
    async def deep_result_wf(ctx: Context, _: Any) -> Any:
        calls["workflow"] += 1
        return nested(DEPTH)

    async with make_rt(deep_step_wf, deep_result_wf) as rt:
        with pytest.raises(SerializationError, match="nested too deeply"):
            await rt.trigger(deep_result_wf, nested(DEPTH))
        await nothing_written(db)
        a = await rt.trigger(deep_step_wf, None)
        b = await rt.trigger(deep_result_wf, None)
        with pytest.raises(WorkflowFailed, match="SerializationError"):
            await a.result(timeout=20)
        with pytest.raises(WorkflowFailed, match="SerializationError"):
            await b.result(timeout=20)
    assert calls == {"step": 1, "workflow": 1}


@pytest.mark.parametrize("bad", [0, "0s", "0ms", "5ms", 0.001])
def test_poll_interval_must_be_at_least_10ms(dsn: str, bad: Any) -> None:
    """Item 11: poll_interval=0 made an idle worker spin; it is refused, named."""
    with pytest.raises(ValueError, match="poll_interval"):
        Runtime(dsn, poll_interval=bad)
    Runtime(dsn, poll_interval="10ms")


@pytest.mark.parametrize(
    "bad",
    [
        "99999999d",
        "99999999999d",
        10**400,
        1e300,
        timedelta(days=999_999_999),
        {"amount": 10**30, "unit": "weeks"},
    ],
    ids=["99999999d", "99999999999d", "10**400", "1e300", "timedelta.max", "10**30 weeks"],
)
def test_durations_that_overflow_a_datetime_are_value_errors(bad: Any) -> None:
    """Item 12: durations no datetime can add are refused with ValueError naming them."""
    with pytest.raises(ValueError, match=r"invalid duration.*at most 1000 years"):
        parse_duration(bad)
    assert parse_duration("1000w") == 1000 * 604800


async def test_sleep_too_long_raises_value_error_at_the_call(make_rt: MakeRuntime) -> None:
    """Item 12: ctx.sleep(name, "99999999d") raised OverflowError and failed the run; now the
    call raises ValueError, which the workflow can handle."""

    @workflow(name="long_sleep")
    async def long_sleep(ctx: Context, _: Any) -> str:
        try:
            await ctx.sleep("nap", "99999999d")
        except ValueError as exc:
            return str(exc)
        return "slept"

    async with make_rt(long_sleep) as rt:
        h = await rt.trigger(long_sleep, None)
        assert "invalid duration '99999999d'" in await h.result(timeout=20)


async def test_hook_tokens_never_start_with_a_dash(
    make_rt: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 15: about 1 token in 64 from token_urlsafe starts with '-', which the CLI read
    as an option. Forced here: the random part starts with '-'."""
    real = secrets.token_urlsafe
    monkeypatch.setattr(durable.context.secrets, "token_urlsafe", lambda n: "-" + real(n))

    @workflow(name="hooked")
    async def hooked(ctx: Context, _: Any) -> Any:
        hook = await ctx.create_hook("h")
        return hook.token

    async with make_rt(hooked) as rt:
        token = await (await rt.trigger(hooked, None)).result(timeout=20)
    assert not token.startswith("-")
    assert len(token) >= 32
