"""Timers under contention: many runs sleep 1 s while three workers compete for them.

Must hold: one timer_started and one timer_fired per run; no timer fires early
(timer_fired.created_at >= the recorded deadline); the step after the sleep runs once;
lateness is bounded by the poll interval plus scheduling slack (figures reported).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from typing import Any

import pytest

from durable import Context, codec, workflow

from .conftest import MakeRuntime
from .harness import check_histories, report

SIZES = [
    pytest.param(50, id="short"),
    pytest.param(500, id="long", marks=pytest.mark.faults),
]
POLL_S = 1.0


@pytest.mark.parametrize("n", SIZES)
async def test_timers_fire_once_and_never_early(make_rt: MakeRuntime, db: Any, n: int) -> None:
    after: Counter[str] = Counter()

    def mark(run_id: str) -> str:
        after[run_id] += 1
        return run_id

    @workflow(name="sleeper")
    async def sleeper(ctx: Context, _: Any) -> str:
        await ctx.step("before", lambda: 1)
        await ctx.sleep("nap", "1s")
        return str(await ctx.step("after", mark, ctx.run_id))

    opts = {"poll_interval": f"{POLL_S}s", "concurrency": 100}
    async with (
        make_rt(sleeper, **opts) as w1,
        make_rt(sleeper, **opts) as w2,
        make_rt(sleeper, **opts) as w3,
    ):
        handles = []
        for i in range(n):
            handles.append(await (w1, w2, w3)[i % 3].trigger(sleeper, None))
        outs = await asyncio.gather(*(w1.handle(h.run_id).result(timeout=120) for h in handles))
    assert outs == [h.run_id for h in handles]
    assert set(after.values()) == {1} and len(after) == n, "the step after a sleep re-ran"
    await check_histories(db)
    rows = await db.fetch(
        "SELECT run_id, kind, payload, created_at FROM events"
        " WHERE kind IN ('timer_started', 'timer_fired') ORDER BY run_id, seq"
    )
    per_run: dict[str, dict[str, list[Any]]] = {}
    for r in rows:
        per_run.setdefault(r["run_id"], {}).setdefault(r["kind"], []).append(r)
    assert len(per_run) == n
    lateness = []
    for run_id, kinds in per_run.items():
        assert len(kinds["timer_started"]) == 1 and len(kinds["timer_fired"]) == 1, run_id
        until = codec.decode(kinds["timer_started"][0]["payload"])["until"]
        fired = kinds["timer_fired"][0]["created_at"]
        assert fired >= until, f"timer of {run_id} fired {until - fired} early"
        lateness.append((fired - until).total_seconds())
    lateness.sort()
    p99 = lateness[min(len(lateness) - 1, int(len(lateness) * 0.99))]
    # Late only by the poll interval (when another worker picks the run up) plus slack.
    assert lateness[-1] <= POLL_S + 1.5, f"max lateness {lateness[-1]:.3f}s"
    report(
        "timers_contention",
        runs=n,
        workers=3,
        poll_s=POLL_S,
        lateness_s_median=round(statistics.median(lateness), 3),
        lateness_s_p99=round(p99, 3),
        lateness_s_max=round(lateness[-1], 3),
    )
