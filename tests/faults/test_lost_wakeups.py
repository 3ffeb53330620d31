"""Lost wake-ups: with LISTEN/NOTIFY off (`Runtime(listen=False)`), polling alone must
complete every run -- signals sent before and after the wait, hook deliveries, child
completions waking their parents, and timers -- within about one poll interval."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from durable import Context, workflow

from .conftest import MakeRuntime
from .harness import check_histories, report, wait_for


@workflow(name="two_signals")
async def two_signals(ctx: Context, _: Any) -> Any:
    return [await ctx.wait_for_signal("go"), await ctx.wait_for_signal("go")]


@workflow(name="kid")
async def kid(ctx: Context, x: int) -> int:
    await ctx.sleep("nap", "200ms")
    return int(await ctx.step("double", lambda: x * 2))


@workflow(name="parent")
async def parent(ctx: Context, x: int) -> int:
    return int(await ctx.child(kid, x)) + 1


@workflow(name="hooked")
async def hooked(ctx: Context, _: Any) -> Any:
    hook = await ctx.create_hook("approve")
    return await hook.wait()


SIZES = [
    pytest.param(10, id="short"),
    pytest.param(100, id="long", marks=pytest.mark.faults),
]
POLL_S = 0.2


@pytest.mark.parametrize("n", SIZES)
async def test_polling_alone_completes_every_run(
    make_rt: MakeRuntime, db: Any, rng: Any, n: int
) -> None:
    wfs = (two_signals, kid, parent, hooked)
    async with (
        make_rt(*wfs, listen=False, poll_interval=f"{int(POLL_S * 1000)}ms") as worker,
        make_rt(*wfs, listen=False, worker=False, poll_interval="200ms") as client,
    ):
        assert worker._listener is None and client._listener is None
        sig = [await client.trigger(two_signals, None) for _ in range(n)]
        par = [await client.trigger(parent, i) for i in range(n)]
        hok = [await client.trigger(hooked, None) for _ in range(n)]
        # Half the signals go out before the run can have reached its wait (buffered).
        early = set(rng.sample(range(n), n // 2))
        for i in early:
            await client.signal(sig[i].run_id, "go", f"early-{i}")

        async def suspended(ids: list[str]) -> bool:
            c = await db.fetchval(
                "SELECT count(*) FROM runs WHERE id = ANY($1::text[]) AND status = 'suspended'"
                " AND pending IS NOT NULL",
                ids,
            )
            return bool(c == len(ids))

        late = [sig[i].run_id for i in range(n) if i not in early]
        await wait_for(lambda: suspended(late), timeout=30, what="signal runs suspended")
        sent_at: dict[str, datetime] = {}
        for i in range(n):
            if i not in early:
                sent_at[sig[i].run_id] = datetime.now(UTC)
                await client.signal(sig[i].run_id, "go", f"late-{i}")
        # The second signal: at a random moment, while the run runs or after it waited.
        for i in rng.sample(range(n), n):
            await asyncio.sleep(rng.uniform(0, 0.02))
            await client.signal(sig[i].run_id, "go", f"second-{i}")

        # Hooks: the token is in the run's history once the hook exists.
        async def tokens() -> bool:
            c = await db.fetchval("SELECT count(*) FROM hooks")
            return bool(c == n)

        await wait_for(tokens, timeout=30, what="hooks created")
        for h in hok:
            info = await client.get_run(h.run_id)
            token = next(e.payload for e in info.history if e.kind == "hook_created")
            await client.execute_hook(token, {"ok": h.run_id})

        outs = await asyncio.gather(*(client.handle(h.run_id).result(timeout=60) for h in sig))
        for i, out in enumerate(outs):
            first = f"early-{i}" if i in early else f"late-{i}"
            assert out == [first, f"second-{i}"]
        assert [await client.handle(h.run_id).result(timeout=60) for h in par] == [
            2 * i + 1 for i in range(n)
        ]
        for h in hok:
            assert await client.handle(h.run_id).result(timeout=60) == {"ok": h.run_id}
    await check_histories(db)
    # Pickup latency of a signal sent to a suspended run, found by polling alone: from
    # the send to the signal_received event the woken run recorded.
    received = {
        r["run_id"]: r["created_at"]
        for r in await db.fetch(
            "SELECT run_id, created_at FROM events WHERE kind = 'signal_received' AND pos = 0"
            " AND run_id = ANY($1::text[])",
            list(sent_at),
        )
    }
    pickup = sorted((received[r] - t).total_seconds() for r, t in sent_at.items())
    assert pickup[-1] <= POLL_S + 1.0, f"a signal waited {pickup[-1]:.2f}s for a poll"
    # A parent waiting on a child is woken by polling (no NOTIFY): one child_completed each.
    assert await db.fetchval("SELECT count(*) FROM events WHERE kind = 'child_completed'") == n
    report(
        "lost_wakeups_listen_off",
        runs=4 * n,
        poll_s=POLL_S,
        signal_pickup_s_median=round(statistics.median(pickup), 3),
        signal_pickup_s_max=round(pickup[-1], 3),
    )


STEP_CANCELLED: list[float] = []
STEP_STARTED: list[float] = []


async def endless() -> None:
    STEP_STARTED.append(time.monotonic())
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        STEP_CANCELLED.append(time.monotonic())
        raise


@workflow(name="endless_step")
async def endless_step(ctx: Context, _: Any) -> Any:
    try:
        await ctx.step("endless", endless)
    finally:
        await ctx.step("undo", lambda: "undone")


async def test_lost_cancel_notice_stops_the_step_within_a_heartbeat(
    make_rt: MakeRuntime, db: Any
) -> None:
    """Issue 16: "a lost cancel NOTIFY lets a live step run until the next heartbeat".

    The executing worker does not LISTEN, so the `x:` notice of the cancel never reaches
    it. Its next lease renewal is refused (the run is no longer running): the execution
    is stopped and the step's coroutine cancelled, within one heartbeat (lease / 3);
    then the run's cleanup is claimed (the lost lease makes the worker look for
    cleanups at once, instead of within 5 poll intervals) and its `finally` step runs."""
    STEP_CANCELLED.clear()
    STEP_STARTED.clear()
    async with (
        make_rt(endless_step, listen=False, lease="1500ms", poll_interval="1s") as worker,
        make_rt(endless_step, listen=False, worker=False) as client,
    ):
        assert worker._listener is None
        h = await client.trigger(endless_step, None)

        async def started() -> bool:
            return bool(STEP_STARTED)

        await wait_for(started, timeout=15, what="the step running on the worker")
        t0 = time.monotonic()
        await client.cancel(h.run_id)

        async def step_cancelled() -> bool:
            return bool(STEP_CANCELLED)

        await wait_for(step_cancelled, timeout=15, what="the live step cancelled")
        stopped_s = STEP_CANCELLED[0] - t0

        async def cleaned() -> bool:
            n = await db.fetchval(
                "SELECT count(*) FROM events WHERE run_id = $1 AND kind = 'cleanup_finished'",
                h.run_id,
            )
            return bool(n)

        await wait_for(cleaned, timeout=30, what="the cancelled run's cleanup")
        cleaned_s = time.monotonic() - t0
        assert (await client.get_run(h.run_id)).status == "cancelled"
    undo = await db.fetchval(
        "SELECT count(*) FROM events WHERE run_id = $1 AND kind = 'step_completed'"
        " AND name = 'undo'",
        h.run_id,
    )
    report(
        "lost_cancel_notice",
        lease_s=1.5,
        heartbeat_s=0.5,
        step_cancelled_after_s=round(stopped_s, 2),
        cleanup_finished_after_s=round(cleaned_s, 2),
        undo_steps=undo,
    )
    assert undo == 1
    assert len(STEP_STARTED) == 1, "the cancelled step ran again"
