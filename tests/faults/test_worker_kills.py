"""Worker kills: SIGKILL worker processes at random moments under load.

Three worker subprocesses execute N runs of a 10-step workflow whose step bodies write a
row to `side_effects` before they return. K times, at a random progress point, one worker
that holds runs is SIGKILLed and immediately replaced by a fresh process. Must hold:

- every run completes with the right output;
- every (run, step) has exactly one step_completed event; histories are contiguous;
- every step body ran at least once, and the extra executions are bounded by the runs
  the killed workers held (at most one step in flight per run), so <= K * concurrency;
- every duplicate execution's earlier copies ran on a killed worker, and the recorded
  result is the last execution's;
- a killed worker's runs are reclaimed within lease + poll interval (+ slack).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import pytest

from durable import codec

from .conftest import MakeRuntime
from .harness import Worker, check_histories, create_side_effects, report, wait_for, workers_cleanup
from .worker_app import chain

STEPS = 10
WORKERS = 3
CONCURRENCY = 20
LEASE = "2s"
LEASE_S = 2.0
POLL = "200ms"

SIZES = [
    pytest.param({"runs": 50, "kills": 2, "ms": 200}, id="short"),
    pytest.param({"runs": 1000, "kills": 10, "ms": 150}, id="long", marks=pytest.mark.faults),
]


def _pid_of(owner: str) -> int:
    # Executor.owner is "<host>:<pid>:<random>"; the host may itself contain ':'.
    return int(owner.rsplit(":", 2)[1])


@pytest.mark.parametrize("size", SIZES)
async def test_sigkill_workers_under_load(
    make_rt: MakeRuntime, dsn: str, schema: str, db: Any, rng: Any, log_dir: Any, size: Any
) -> None:
    runs, kills, ms = size["runs"], size["kills"], size["ms"]
    total_steps = runs * STEPS
    started = time.monotonic()
    async with make_rt(chain, worker=False) as rt:
        await create_side_effects(db)
        ids: list[str] = []
        for i in range(0, runs, 50):
            handles = await asyncio.gather(
                *(
                    rt.trigger(chain, {"steps": STEPS, "ms": ms})
                    for _ in range(i, min(runs, i + 50))
                )
            )
            ids.extend(h.run_id for h in handles)

    args = ("--lease", LEASE, "--concurrency", str(CONCURRENCY), "--poll", POLL)
    with workers_cleanup() as all_workers:
        workers = [Worker(dsn, schema, log_dir, *args) for _ in range(WORKERS)]
        all_workers.extend(workers)
        await asyncio.gather(*(w.wait_ready() for w in workers))

        async def steps_done() -> int:
            return int(
                await db.fetchval("SELECT count(*) FROM events WHERE kind = 'step_completed'")
            )

        killed_pids: set[int] = set()
        kill_log: list[dict[str, Any]] = []
        thresholds = sorted(rng.uniform(0.1, 0.75) for _ in range(kills))
        for threshold in thresholds:
            target = int(threshold * total_steps)

            async def reached(target: int = target) -> bool:
                return await steps_done() >= target

            await wait_for(reached, timeout=300, what=f"{target} steps done")

            # A victim that holds runs right now, picked at random among the workers.
            victim: Worker | None = None
            for _ in range(100):
                rows = await db.fetch(
                    "SELECT DISTINCT lease_owner FROM runs WHERE status = 'running'"
                    " AND lease_until > now()"
                )
                holding = {_pid_of(r["lease_owner"]) for r in rows}
                candidates = [w for w in workers if w.pid in holding and w.ready]
                if candidates:
                    victim = rng.choice(candidates)
                    break
                await asyncio.sleep(0.05)
            assert victim is not None, "no worker holds a run: the load ended before the kill"
            await asyncio.sleep(rng.uniform(0.0, ms / 1000))  # land anywhere inside a step
            victim.kill()
            t_kill = time.monotonic()
            killed_pids.add(victim.pid)
            held = await db.fetch(
                "SELECT id, fence FROM runs WHERE status = 'running' AND lease_owner LIKE $1",
                f"%:{victim.pid}:%",
            )
            replacement = Worker(dsn, schema, log_dir, *args)
            all_workers.append(replacement)
            workers[workers.index(victim)] = replacement
            fences = {r["id"]: r["fence"] for r in held}

            async def reclaimed(fences: dict[str, int] = fences) -> bool:
                rows = await db.fetch(
                    "SELECT id, fence, status FROM runs WHERE id = ANY($1::text[])", list(fences)
                )
                return all(r["fence"] > fences[r["id"]] or r["status"] == "completed" for r in rows)

            await wait_for(reclaimed, timeout=LEASE_S + 20, interval=0.02, what="reclaim")
            recovery = time.monotonic() - t_kill
            kill_log.append(
                {
                    "at_steps": await steps_done(),
                    "held": len(held),
                    "recovery_s": round(recovery, 3),
                }
            )
            await replacement.wait_ready()

        async def all_done() -> bool:
            n = await db.fetchval("SELECT count(*) FROM runs WHERE status = 'completed'")
            return bool(n == runs)

        try:
            await wait_for(all_done, timeout=60 + runs * 0.3, interval=0.2, what="all runs done")
        finally:
            codes = [w.stop() for w in workers]
        wall = time.monotonic() - started
        logs = "\n".join(w.log_text() for w in all_workers)

    assert codes == [0] * WORKERS, f"workers exited {codes}"
    assert len(kill_log) == kills
    assert " ERROR " not in logs and "Traceback" not in logs, logs[-3000:]

    # Outputs and history invariants.
    rows = await db.fetch("SELECT id, status, output FROM runs")
    assert len(rows) == runs and {r["status"] for r in rows} == {"completed"}
    recorded_pid: dict[tuple[str, int], int] = {}
    for r in rows:
        out = codec.decode(r["output"])
        assert [o["step"] for o in out] == list(range(STEPS))
        for o in out:
            recorded_pid[(r["id"], o["step"])] = o["pid"]
    await check_histories(db)
    assert (
        await db.fetchval("SELECT count(*) FROM events WHERE kind = 'step_completed'")
        == total_steps
    )

    # Side effects: at least once each, extras only from killed workers, bounded.
    effects = await db.fetch(
        "SELECT run_id, step, array_agg(pid ORDER BY id) AS pids FROM side_effects"
        " GROUP BY run_id, step"
    )
    assert len(effects) == total_steps, "some step body never ran"
    extras = 0
    for e in effects:
        pids = e["pids"]
        extras += len(pids) - 1
        assert recorded_pid[(e["run_id"], e["step"])] == pids[-1], (
            f"recorded result of {e['run_id']} step {e['step']} is not from its last execution"
        )
        assert set(pids[:-1]) <= killed_pids, (
            f"{e['run_id']} step {e['step']} re-ran after a worker that was not killed: {pids}"
        )
    held_total = sum(k["held"] for k in kill_log)
    # At most one step is in flight per held run, so a kill re-executes at most the
    # runs its victim held, and a worker holds at most CONCURRENCY runs.
    assert all(k["held"] <= CONCURRENCY for k in kill_log), kill_log
    assert extras <= held_total <= kills * CONCURRENCY
    recoveries = [k["recovery_s"] for k in kill_log]
    # Reclaim needs the lease to lapse (<= LEASE_S after the last heartbeat) plus a poll.
    assert max(recoveries) <= LEASE_S + 5.0
    report(
        "worker_kills",
        form="long" if runs >= 1000 else "short",
        runs=runs,
        steps=total_steps,
        workers=WORKERS,
        concurrency=CONCURRENCY,
        lease=LEASE,
        kills=kills,
        held_at_kills=held_total,
        bound_k_times_concurrency=kills * CONCURRENCY,
        extra_executions=extras,
        recovery_s_min=min(recoveries),
        recovery_s_median=statistics.median(recoveries),
        recovery_s_max=max(recoveries),
        kill_log=kill_log,
        wall_s=round(wall, 1),
    )


async def test_concurrency_limit_caps_runs_held_per_worker(make_rt: MakeRuntime, db: Any) -> None:
    """Runtime(concurrency=5) must never hold more than 5 runs (the bound on how many
    steps a SIGKILL can leave in flight, and on the worker's memory and connections).

    Regression test: back-to-back claims used to count only runs whose task had loaded
    its history, so a worker held 2-4x its limit (fixed in the executor's accounting)."""
    from durable import Context, workflow

    @workflow(name="slow3")
    async def slow3(ctx: Context, _: Any) -> int:
        for i in range(3):
            await ctx.step(f"s{i}", asyncio.sleep, 0.1)
        return 1

    async with make_rt(slow3, worker=False) as client:
        handles = [await client.trigger(slow3, None) for _ in range(25)]
    async with make_rt(slow3, concurrency=5) as rt:
        most_rows = most_tasks = 0
        for _ in range(30):
            rows = await db.fetchval("SELECT count(*) FROM runs WHERE status = 'running'")
            most_rows = max(most_rows, rows)
            most_tasks = max(most_tasks, len(rt.executor.active))
            await asyncio.sleep(0.025)
        for h in handles:
            assert await rt.handle(h.run_id).result(timeout=30) == 1
    report("concurrency_limit", limit=5, most_running_rows=most_rows, most_active=most_tasks)
    assert most_rows <= 5, f"a worker with concurrency=5 held {most_rows} runs at once"
