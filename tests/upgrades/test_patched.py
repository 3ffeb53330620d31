"""`ctx.patched`: old runs keep the old path after a restart on new code, new runs take
the new one; a removed patch call with its marker in history is non-determinism."""

from __future__ import annotations

from typing import Any

import pytest

from durable import Context, NonDeterminismError, workflow

from .conftest import MakeRuntime, wait_status

CALLS: list[str] = []


def note(name: str) -> str:
    CALLS.append(name)
    return name


# Version "1" of `billing`, as deployed before the patch.
@workflow(name="billing", version="1")
async def billing_old(ctx: Context, _: Any) -> list[str]:
    first = await ctx.step("charge_card", note, "charge_card")
    await ctx.wait_for_signal("go")
    last = await ctx.step("receipt", note, "receipt")
    return [first, last]


# The same name and version after the patch: charging moved to an invoice, and the
# receipt became an email. Runs recorded by the old code must keep replaying.
@workflow(name="billing", version="1")
async def billing_patched(ctx: Context, _: Any) -> list[str]:
    if ctx.patched("invoice"):
        first = await ctx.step("invoice", note, "invoice")
    else:
        first = await ctx.step("charge_card", note, "charge_card")
    assert ctx.patched("invoice") is (first == "invoice")  # memoised: same answer
    await ctx.wait_for_signal("go")
    if ctx.patched("email"):
        last = await ctx.step("email", note, "email")
    else:
        last = await ctx.step("receipt", note, "receipt")
    return [first, last]


# Phase two: every run recorded before "invoice" has ended; its old branch is gone.
@workflow(name="billing", version="1")
async def billing_deprecated(ctx: Context, _: Any) -> list[str]:
    ctx.deprecate_patch("invoice")
    first = await ctx.step("invoice", note, "invoice")
    await ctx.wait_for_signal("go")
    last = await ctx.step("email", note, "email")
    return [first, last]


# Wrong: the patch call removed at once, while runs recorded with its marker still run.
@workflow(name="billing", version="1")
async def billing_removed(ctx: Context, _: Any) -> list[str]:
    first = await ctx.step("invoice", note, "invoice")
    await ctx.wait_for_signal("go")
    last = await ctx.step("email", note, "email")
    return [first, last]


def kinds(info: Any) -> list[tuple[str, str]]:
    return [(e.kind, e.name) for e in info.history]


async def test_old_run_keeps_old_path_after_restart_and_new_run_takes_new(
    make_rt: MakeRuntime,
) -> None:
    CALLS.clear()
    async with make_rt(billing_old) as rt:
        old = await rt.trigger(billing_old, None)
        await wait_status(rt, old.run_id, "suspended")
    assert CALLS == ["charge_card"]

    # The worker restarts with the patched code (same workflow name and version).
    CALLS.clear()
    async with make_rt(billing_patched) as rt:
        await rt.signal(old.run_id, "go")
        # Recorded before the patch: "invoice" answers False and takes no position, so
        # the old branch's step meets its recorded event. "email" is reached for the
        # first time after the deploy: its marker is recorded and the new path runs.
        assert await rt.handle(old.run_id).result(timeout=10) == ["charge_card", "email"]
        assert CALLS == ["email"]  # charge_card replayed, not run again
        info = await rt.get_run(old.run_id)
        assert kinds(info) == [
            ("step_completed", "charge_card"),
            ("signal_waiting", "go"),
            ("signal_received", "go"),
            ("patch_marker", "email"),
            ("step_completed", "email"),
            ("run_completed", ""),
        ]

        CALLS.clear()
        new = await rt.trigger(billing_patched, None)
        await wait_status(rt, new.run_id, "suspended")
        await rt.signal(new.run_id, "go")
        assert await new.result(timeout=10) == ["invoice", "email"]
        assert CALLS == ["invoice", "email"]
        assert [k for k, _ in kinds(await rt.get_run(new.run_id))].count("patch_marker") == 2


async def test_patched_run_replays_after_restart_and_through_deprecate_patch(
    make_rt: MakeRuntime,
) -> None:
    CALLS.clear()
    async with make_rt(billing_patched, sticky_cache=0) as rt:
        h = await rt.trigger(billing_patched, None)
        await wait_status(rt, h.run_id, "suspended")
    assert CALLS == ["invoice"]
    CALLS.clear()
    # Phase two code replays the marker recorded by phase one code.
    async with make_rt(billing_deprecated) as rt:
        await rt.signal(h.run_id, "go")
        assert await rt.handle(h.run_id).result(timeout=10) == ["invoice", "email"]
    assert CALLS == ["email"]


async def test_removed_patch_call_with_marker_in_history_is_non_determinism(
    make_rt: MakeRuntime,
) -> None:
    CALLS.clear()
    async with make_rt(billing_patched) as rt:
        h = await rt.trigger(billing_patched, None)
        await wait_status(rt, h.run_id, "suspended")
    CALLS.clear()
    async with make_rt(billing_removed) as rt:
        await rt.signal(h.run_id, "go")
        with pytest.raises(Exception, match="NonDeterminismError") as caught:
            await rt.handle(h.run_id).result(timeout=10)
        info = await rt.get_run(h.run_id)
    assert info.status == "failed"
    assert "patch 'invoice'" in (info.error or "")
    assert CALLS == []  # the recorded step was not run again
    assert not isinstance(caught.value, NonDeterminismError)  # the run's WorkflowFailed


async def test_patch_id_is_checked(make_rt: MakeRuntime) -> None:
    @workflow
    async def bad_patch(ctx: Context, _: Any) -> bool:
        return ctx.patched("a\x00b")

    async with make_rt(bad_patch) as rt:
        h = await rt.trigger(bad_patch, None)
        with pytest.raises(Exception, match="patch id"):
            await h.result(timeout=10)
        info = await rt.get_run(h.run_id)
    assert [e.kind for e in info.history] == ["run_failed"]
