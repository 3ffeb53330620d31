"""One-shot database errors at each store call a run makes (DBOS's "commit hiccup").

A transient connection error -- what a PostgreSQL restart or a killed backend looks like
to asyncpg -- is injected exactly once into one store operation while a run uses it.
Must hold: the run still completes with the right output (the attempt is abandoned and
retried from history; the error never reaches workflow code), and each step is recorded
once; no ERROR is logged for it. Quick and deterministic: part of the default run.

Regression tests: when written, a connection error in create_hook, start_child,
child_outcome or take_message was raised inside the workflow and failed the run for
good (RunExecution._guard abandoned the attempt only on FenceLost), and one while
loading history was logged at ERROR as an "unexpected executor error".
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import asyncpg
import pytest

from durable import Context, RunClosed, WorkflowFailed, workflow

from .conftest import MakeRuntime
from .harness import capture_problems, check_histories, report, wait_for


@workflow(name="kid2")
async def kid2(ctx: Context, x: int) -> int:
    return int(await ctx.step("double", lambda: x * 2))


@workflow(name="allops")
async def allops(ctx: Context, _: Any) -> Any:
    a = await ctx.step("a", lambda: 1)
    hook = await ctx.create_hook("hk")
    c = await ctx.child(kid2, 2)
    s = await ctx.wait_for_signal("go")
    hv = await hook.wait()
    await ctx.sleep("nap", "10ms")
    b = await ctx.step("b", lambda: 2)
    return [a, c, s, hv, b]


POINTS = [
    pytest.param("claim"),
    pytest.param("load_events"),
    pytest.param("commit"),
    pytest.param("create_hook"),
    pytest.param("start_child"),
    pytest.param("child_outcome"),
    pytest.param("take_message"),
]


@pytest.mark.parametrize("point", POINTS)
async def test_one_transient_db_error_at_each_store_call(
    make_rt: MakeRuntime, db: Any, point: str
) -> None:
    with capture_problems() as cap:
        async with make_rt(allops, kid2, lease="1s", sticky_cache=0) as rt:
            store = rt.store
            original = getattr(store, point)
            hits: list[str] = []
            armed = [point != "load_events"]  # load_events: arm once there is history

            async def flaky(*args: Any, **kwargs: Any) -> Any:
                if armed[0] and not hits:
                    hits.append(point)
                    raise asyncpg.exceptions.ConnectionDoesNotExistError(
                        "injected: connection was closed in the middle of operation"
                    )
                return await original(*args, **kwargs)

            setattr(store, point, flaky)
            h = await rt.trigger(allops, None)
            await rt.signal(h.run_id, "go", "sig")  # buffered until the run waits

            async def hooked_or_over() -> bool:
                hooks = await db.fetchval("SELECT count(*) FROM hooks")
                return bool(hooks) or await h.status() in ("completed", "failed")

            await wait_for(hooked_or_over, timeout=20, what="hook created")
            armed[0] = True
            token = await db.fetchval("SELECT token FROM hooks")
            if token is not None:
                with contextlib.suppress(RunClosed):  # the run may have failed already
                    await rt.execute_hook(token, "hook")
            try:
                out = await h.result(timeout=30)
            except WorkflowFailed as exc:
                out = f"failed: {exc.error}"
    assert hits == [point], f"the fault was not injected at {point}"
    errors = cap.text(logging.ERROR)
    report("db_fault_once", point=point, outcome=out, error_log_lines=len(errors.splitlines()))
    assert out == [1, 4, "sig", "hook", 2], "a transient DB error failed the run"
    await check_histories(db)
    assert not errors, errors[:3000]
