"""Early mistakes caught: bad @workflow declarations, un-awaited ctx calls, children
that no worker serves."""

from __future__ import annotations

from typing import Any

import pytest

from durable import Context, WorkflowFailed, workflow

from .conftest import MakeRuntime


def test_workflow_must_be_async_def() -> None:
    with pytest.raises(TypeError, match=r"sync_flow.*async def"):

        @workflow
        def sync_flow(ctx: Context, inp: Any) -> Any:  # type: ignore[arg-type]
            return inp


def test_workflow_must_take_ctx_and_input() -> None:
    with pytest.raises(TypeError, match=r"no_args.*\(ctx, input\)"):

        @workflow
        async def no_args() -> None:  # type: ignore[type-var]
            return None

    with pytest.raises(TypeError, match=r"only_ctx.*\(ctx, input\)"):

        @workflow
        async def only_ctx(ctx: Context) -> None:
            return None


@pytest.mark.parametrize("name", ["", "   "])
def test_workflow_name_must_not_be_empty(name: str) -> None:
    with pytest.raises(ValueError, match=r"named.*non-empty"):

        @workflow(name=name)
        async def named(ctx: Context, inp: Any) -> Any:
            return inp


def test_valid_declarations_still_work() -> None:
    @workflow(name="ok")
    async def a(ctx: Context, inp: Any, extra: int = 1) -> Any:
        return inp

    @workflow
    async def b(ctx: Context, *args: Any) -> Any:
        return args

    assert (a.name, b.name) == ("ok", "b")


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_unawaited_step_fails_the_run_naming_its_position(make_rt: MakeRuntime) -> None:
    ran: list[str] = []

    @workflow
    async def forgetful(ctx: Context, _: Any) -> Any:
        await ctx.step("reserve", lambda: ran.append("reserve"))
        ctx.step("charge", lambda: ran.append("charge"))  # no await
        return "done"

    async with make_rt(forgetful) as rt:
        h = await rt.trigger(forgetful)
        with pytest.raises(WorkflowFailed) as caught:
            await h.result(timeout=10)
    error = caught.value.error or ""
    assert error.startswith("UnawaitedOperation")
    assert "position 1" in error and "after step_completed 'reserve' (position 0)" in error
    assert "await" in error
    assert ran == ["reserve"]


async def test_recorded_values_and_gathered_ops_are_not_flagged(make_rt: MakeRuntime) -> None:
    import asyncio

    @workflow
    async def fine(ctx: Context, _: Any) -> Any:
        ctx.now()
        ctx.uuid4()
        a, b = await asyncio.gather(ctx.step("a", lambda: 1), ctx.step("b", lambda: 2))
        return a + b

    async with make_rt(fine) as rt:
        assert await (await rt.trigger(fine)).result(timeout=10) == 3


@workflow
async def unregistered_child(ctx: Context, _: Any) -> Any:
    return 1


async def test_child_of_an_unregistered_workflow_object_fails_the_parent(
    make_rt: MakeRuntime,
) -> None:
    @workflow
    async def parent(ctx: Context, _: Any) -> Any:
        return await ctx.child(unregistered_child)

    async with make_rt(parent) as rt:
        h = await rt.trigger(parent)
        with pytest.raises(WorkflowFailed, match="WorkflowNotFound") as caught:
            await h.result(timeout=10)
    assert "unregistered_child" in str(caught.value) and "not registered" in str(caught.value)


async def test_child_by_unknown_name_still_fails_the_parent(make_rt: MakeRuntime) -> None:
    @workflow
    async def parent(ctx: Context, _: Any) -> Any:
        return await ctx.child("nobody")

    async with make_rt(parent) as rt:
        with pytest.raises(WorkflowFailed, match="WorkflowNotFound"):
            await (await rt.trigger(parent)).result(timeout=10)
