"""Lost wake-ups: with LISTEN/NOTIFY off (`Runtime(listen=False)`), polling alone must
complete every run -- signals sent before and after the wait, hook deliveries, child
completions waking their parents, and timers -- within about one poll interval."""

from __future__ import annotations

import asyncio
import statistics
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
