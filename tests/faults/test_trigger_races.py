"""Concurrent triggers of one custom run id (or one idempotency key) start the run once.

Issue 16, item 13: five `rt.trigger(wf, {"n": i}, run_id="custom-run-id-123")` at once
in one process were coalesced into one insert; `create_runs` decided "created" by
whether the id came back from the insert, so all five handles said `created=True`,
local dispatch started five executions with five inputs, the step body ran five times,
and the stored output could come from a discarded input. A batch now resolves its
duplicates as sequential calls would: the first request wins, the others get
`created=False` handles on that run. Runs on both stores.
"""

from __future__ import annotations

import asyncio
from typing import Any

from durable import Context, workflow

from .harness import report

BODIES: list[int] = []


def body(data: dict[str, int]) -> dict[str, int]:
    BODIES.append(data["n"])
    return data


@workflow(name="dup_run")
async def dup_run(ctx: Context, data: dict[str, int]) -> dict[str, int]:
    result: dict[str, int] = await ctx.step("echo", body, data)
    return result


async def check_one_run(rt: Any, handles: list[Any], run_id: str | None = None) -> None:
    created = [h for h in handles if h.created]
    assert len({h.run_id for h in handles}) == 1, [h.run_id for h in handles]
    outputs = [await h.result(timeout=30) for h in handles]
    stored = (await rt.get_run(handles[0].run_id)).input
    report(
        "trigger_races",
        triggers=len(handles),
        created=len(created),
        bodies=len(BODIES),
        stored_input=stored,
        outputs=outputs,
    )
    assert len(created) == 1, f"{len(created)} handles say created"
    assert [stored["n"]] == BODIES, f"step body ran for inputs {BODIES}, stored {stored}"
    assert all(o == stored for o in outputs), (outputs, stored)


async def test_concurrent_triggers_with_one_run_id_start_it_once(backend: Any) -> None:
    BODIES.clear()
    async with backend.runtime(dup_run, poll_interval="100ms") as rt:
        handles = await asyncio.gather(
            *(rt.trigger(dup_run, {"n": i}, run_id="custom-run-id-123") for i in range(5))
        )
        await check_one_run(rt, list(handles))


async def test_concurrent_triggers_with_one_idempotency_key_start_it_once(
    backend: Any,
) -> None:
    BODIES.clear()
    async with backend.runtime(dup_run, poll_interval="100ms") as rt:
        handles = await asyncio.gather(
            *(rt.trigger(dup_run, {"n": i}, idempotency_key="order-42") for i in range(5))
        )
        await check_one_run(rt, list(handles))


async def test_concurrent_triggers_on_two_runtimes_start_it_once(backend: Any) -> None:
    BODIES.clear()
    async with (
        backend.runtime(dup_run, poll_interval="100ms") as a,
        backend.runtime(dup_run, poll_interval="100ms") as b,
    ):
        handles = await asyncio.gather(
            *(
                (a if i % 2 else b).trigger(dup_run, {"n": i}, run_id="custom-run-id-123")
                for i in range(6)
            )
        )
        await check_one_run(a, list(handles))
