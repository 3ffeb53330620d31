"""Lease races: heartbeats keep a long step's lease; a frozen worker is fenced out.

1. A step 3.7 times longer than the lease, with a second worker polling for expired
   leases: heartbeats keep the lease, so the step runs once and the run is claimed once.
2. A worker process is SIGSTOPped mid-step (its heartbeats stop), its lease lapses, a
   second worker takes the runs over; then the first is SIGCONTed -- while the second
   still holds the runs ("held") or after they finished ("finished"). The fence must
   reject every late write of the first worker: each step_completed exactly once,
   contiguous seqs, the recorded results are the second worker's, the frozen worker
   never starts a later step, and it stays healthy (it completes a new run afterwards).
   In this end-to-end form the resumed worker's heartbeat usually notices the lost
   lease first; the next two tests pin the write path itself.
3. In-process and deterministic: heartbeats and claims of worker A are stopped, B takes
   over, then A's step returns and A submits step_completed with fence 1: refused, the
   history is unchanged, A drops the run.
4. The same worker re-claims its own run after its heartbeats failed for longer than
   the lease: the ending stale execution must not untrack its successor. (A worker no
   longer claims a run it is executing -- tests/faults/test_blocking_steps.py -- so the
   test switches that exclusion off to keep this second line of defence covered.)
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

from durable import Context, Runtime, codec, workflow
from durable.store.base import BatchResult, ClaimedRun
from durable.store.postgres import PostgresStore

from .conftest import MakeRuntime
from .harness import Worker, check_histories, create_side_effects, report, wait_for, workers_cleanup
from .worker_app import chain


async def test_heartbeats_keep_the_lease_of_a_step_longer_than_it(
    make_rt: MakeRuntime, db: Any
) -> None:
    calls: list[float] = []

    async def long_step() -> str:
        calls.append(time.monotonic())
        await asyncio.sleep(2.2)
        return "done"

    @workflow(name="long_one")
    async def long_one(ctx: Context, _: Any) -> Any:
        first = await ctx.step("long", long_step)
        return [first, await ctx.step("after", lambda: "after")]

    # Two workers on one schema; the second would take the run over the moment the
    # first one's 600 ms lease lapsed (the step lasts 3.7 leases).
    async with make_rt(long_one, lease="600ms") as a, make_rt(long_one, lease="600ms") as b:
        h = await a.trigger(long_one, None)
        assert await b.handle(h.run_id).result(timeout=20) == ["done", "after"]
    assert len(calls) == 1, f"the long step ran {len(calls)} times"
    fence = await db.fetchval("SELECT fence FROM runs WHERE id = $1", h.run_id)
    assert fence == 1, f"the run was claimed {fence} times: its lease lapsed mid-step"
    await check_histories(db)


async def test_late_append_after_takeover_is_rejected_by_the_fence(
    make_rt: MakeRuntime, db: Any
) -> None:
    """Deterministic variant: worker A's heartbeat task is stopped (as if its process
    froze), B takes the run over and holds it, then A's step finishes and A submits
    its step_completed with the stale fence. The commit must refuse it."""
    gate_a = asyncio.Event()
    gate_b = asyncio.Event()
    calls: list[str] = []

    async def contested() -> str:
        calls.append("x")
        if len(calls) == 1:
            await gate_a.wait()
            return "from-A"
        return "from-B"

    async def hold() -> str:
        await gate_b.wait()
        return "held"

    @workflow(name="contested")
    async def contested_wf(ctx: Context, _: Any) -> Any:
        return [await ctx.step("s", contested), await ctx.step("hold", hold)]

    async with make_rt(contested_wf, lease="1s") as a:
        outcomes: list[tuple[str, bool]] = []
        committer = a.executor.committer
        enqueue = committer.enqueue

        def spy(run_id: str, fence: int, *args: Any, **kw: Any) -> asyncio.Future[BatchResult]:
            future = enqueue(run_id, fence, *args, **kw)

            def seen(done: asyncio.Future[BatchResult]) -> None:
                if run_id and not done.cancelled() and done.exception() is None:
                    outcomes.append((f"fence={fence}", run_id not in done.result().rejected))

            future.add_done_callback(seen)
            return future

        committer.enqueue = spy  # type: ignore[method-assign]
        h = await a.trigger(contested_wf, None)

        async def a_in_step() -> bool:
            return len(calls) == 1

        await wait_for(a_in_step, timeout=10, what="A inside the step")
        # Freeze A as a SIGSTOP would, except for the step body: no heartbeats, no claims.
        for task in (a.executor._beat_task, a.executor._loop_task):
            assert task is not None
            task.cancel()
        async with make_rt(contested_wf, lease="5s") as b:

            async def b_holds() -> bool:
                return len(calls) == 2 and bool(
                    await db.fetchval("SELECT count(*) FROM events WHERE kind = 'step_completed'")
                )

            await wait_for(b_holds, timeout=15, what="B took over and recorded the step")
            before = await db.fetch("SELECT seq, kind, name, payload FROM events ORDER BY seq")
            gate_a.set()  # A's late completion goes to the committer with fence 1

            async def a_refused() -> bool:
                return ("fence=1", False) in outcomes

            await wait_for(a_refused, timeout=10, what="A's stale write refused")
            after = await db.fetch("SELECT seq, kind, name, payload FROM events ORDER BY seq")
            assert before == after, "a stale write reached the history"
            assert h.run_id not in a.executor.active, "A did not abandon the run"
            gate_b.set()
            assert await b.handle(h.run_id).result(timeout=10) == ["from-B", "held"]
    await check_histories(db)
    assert await db.fetchval("SELECT fence FROM runs") == 2
    assert outcomes == [("fence=1", False)], outcomes
    report("lease_race_late_append", submits_by_A=outcomes)


class _LateClaim(PostgresStore):
    """The first claim that grants runs is read 1.5 s after the database ran it, as when
    a blocking step holds the loop while the claim's answer waits in the socket."""

    late = True

    async def claim(self, **kwargs: Any) -> list[ClaimedRun]:
        got = await super().claim(**kwargs)
        if got and self.late:
            self.late = False
            await asyncio.sleep(1.5)
        return got


async def test_a_claim_read_after_its_lease_lapsed_does_not_run_the_step_again(
    make_rt: MakeRuntime, dsn: str, schema: str, db: Any
) -> None:
    """Seen in test_blocking_steps: worker A's claim was granted by the database, but A's
    loop was held before it read the answer, so nothing renewed those leases; B took a
    run over, and A, reading its claim at last, ran the step a second time. A claim read
    over half a lease late is now confirmed (fenced renewal) before its runs start."""
    calls: list[str] = []

    async def slow_step() -> str:
        calls.append("x")
        await asyncio.sleep(2)
        return "done"

    @workflow(name="late_claim")
    async def late_claim(ctx: Context, _: Any) -> Any:
        return await ctx.step("slow", slow_step)

    store = _LateClaim(dsn, schema=schema, pool_size=4)
    await store.open()
    try:
        async with (
            Runtime(store=store, workflows=[late_claim], lease="600ms"),
            make_rt(late_claim, worker=False) as client,
        ):
            h = await client.trigger(late_claim, None)  # so that A claims it
            # B starts once A's claim has been granted (and A sits on its answer).
            async def granted() -> bool:
                return not store.late

            await wait_for(granted, timeout=10, what="A's claim")
            async with make_rt(late_claim, lease="600ms") as b:
                assert await b.handle(h.run_id).result(timeout=20) == "done"
    finally:
        await store.close()
    assert calls == ["x"], f"the step ran {len(calls)} times"
    fence = await db.fetchval("SELECT fence FROM runs WHERE id = $1", h.run_id)
    assert fence == 2, f"fence {fence}: B should have taken the run over once"


async def test_stale_execution_does_not_untrack_its_successor_on_the_same_worker(
    make_rt: MakeRuntime, db: Any
) -> None:
    """Heartbeats fail for longer than the lease (e.g. their commits error out), so the
    same worker re-claims its own run (fence 2) while the fence-1 execution is still in
    its step. When the fence-1 execution's write is refused, the fence-2 execution must
    keep being heartbeated: the step must not run a third time.

    Regression: Executor._execute's `finally: self.active.pop(run_id)` was not
    identity-checked, so the ending stale execution untracked its successor, whose
    lease then lapsed (the step ran 3 times, the run was claimed 3 times)."""
    gates = [asyncio.Event(), asyncio.Event()]
    calls: list[int] = []

    async def contested() -> int:
        calls.append(len(calls) + 1)
        n = len(calls)
        if n <= 2:
            await gates[n - 1].wait()
        return n

    @workflow(name="contested2")
    async def wf(ctx: Context, _: Any) -> Any:
        return await ctx.step("s", contested)

    async with make_rt(wf, lease="1s") as a:
        committer = a.executor.committer
        heartbeat = committer.heartbeat

        async def failing(extends: Any) -> set[str]:
            raise ConnectionError("injected: heartbeat commit failed")

        # Re-claiming one's own live run is what the claim's exclusion now prevents.
        a.executor._executing_at_risk = list  # type: ignore[method-assign]
        h = await a.trigger(wf, None)

        async def n_calls(n: int) -> Any:
            async def check() -> bool:
                return len(calls) >= n

            return check

        await wait_for(await n_calls(1), timeout=10, what="first execution in the step")
        committer.heartbeat = failing  # type: ignore[method-assign]
        await wait_for(await n_calls(2), timeout=10, what="the worker re-claiming its run")
        committer.heartbeat = heartbeat  # type: ignore[method-assign]
        gates[0].set()  # the fence-1 execution finishes; its write is refused
        await asyncio.sleep(0.3)
        tracked = h.run_id in a.executor.active
        await asyncio.sleep(2.2)  # > lease: the fence-2 execution must still hold the run
        fence = await db.fetchval("SELECT fence FROM runs")
        third = len(calls)
        gates[1].set()
        result = await a.handle(h.run_id).result(timeout=10)
    await check_histories(db)
    report(
        "lease_race_same_worker_reclaim",
        still_tracked=tracked,
        calls=third,
        fence=fence,
        result=result,
    )
    assert (third, fence) == (2, 2), f"step ran {third} times; run claimed {fence} times"


CASES = [
    pytest.param({"runs": 1, "ms": 500}, "held", id="short-held"),
    pytest.param({"runs": 20, "ms": 1500}, "held", id="long-held", marks=pytest.mark.faults),
    pytest.param(
        {"runs": 20, "ms": 1500}, "finished", id="long-finished", marks=pytest.mark.faults
    ),
]


@pytest.mark.parametrize(("size", "resume"), CASES)
async def test_frozen_worker_is_fenced_out(
    make_rt: MakeRuntime,
    dsn: str,
    schema: str,
    db: Any,
    log_dir: Any,
    size: Any,
    resume: str,
) -> None:
    runs, ms = size["runs"], size["ms"]
    steps = 4
    async with make_rt(chain, worker=False) as rt:
        await create_side_effects(db)
        ids = [(await rt.trigger(chain, {"steps": steps, "ms": ms})).run_id for _ in range(runs)]

    args = ("--lease", "2s", "--poll", "100ms", "--concurrency", "50")
    with workers_cleanup() as started:
        a = await Worker(dsn, schema, log_dir, *args).wait_ready()
        started.append(a)

        async def effects(pid: int, step: int) -> int:
            return int(
                await db.fetchval(
                    "SELECT count(DISTINCT run_id) FROM side_effects WHERE pid = $1 AND step = $2",
                    pid,
                    step,
                )
            )

        async def a_in_step_1() -> bool:
            return await effects(a.pid, 1) == runs

        await wait_for(a_in_step_1, timeout=30, what="first worker inside step 1 of every run")
        a.proc.send_signal(signal.SIGSTOP)
        t_stop = time.monotonic()
        b = await Worker(dsn, schema, log_dir, *args).wait_ready()
        started.append(b)

        async def b_in_step_1() -> bool:
            return await effects(b.pid, 1) == runs

        await wait_for(b_in_step_1, timeout=30, what="second worker re-running step 1")
        takeover_s = time.monotonic() - t_stop

        async def all_completed() -> bool:
            n = await db.fetchval("SELECT count(*) FROM runs WHERE status = 'completed'")
            return bool(n == runs)

        if resume == "finished":
            await wait_for(all_completed, timeout=60, what="runs completed by the second worker")
        else:
            assert await db.fetchval("SELECT count(*) FROM runs WHERE status = 'completed'") == 0
        a.proc.send_signal(signal.SIGCONT)
        # The frozen worker's step-1 timers are long past: it finishes the step bodies at
        # once and tries to record them (and to heartbeat) with its stale fence.
        await asyncio.sleep(2.0)
        assert a.proc.poll() is None, "the resumed worker died"
        await wait_for(all_completed, timeout=60, what="all runs completed")

        # The resumed worker is still healthy: alone, it completes a new run.
        assert b.stop() == 0
        async with make_rt(chain, worker=False) as rt:
            h = await rt.trigger(chain, {"steps": 2, "ms": 10})
            out = await h.result(timeout=30)
        assert [o["pid"] for o in out] == [a.pid, a.pid]
        assert a.stop() == 0
        a_log = a.log_text()

    await check_histories(db)
    for run_id in ids:
        out = codec.decode(await db.fetchval("SELECT output FROM runs WHERE id = $1", run_id))
        # Step 0 was recorded by the first worker before it froze; steps 1.. by the second.
        assert [o["pid"] for o in out] == [a.pid] + [b.pid] * (steps - 1), out
        rows = await db.fetch(
            "SELECT step, array_agg(pid ORDER BY id) AS pids FROM side_effects"
            " WHERE run_id = $1 GROUP BY step ORDER BY step",
            run_id,
        )
        pids = {r["step"]: r["pids"] for r in rows}
        # The in-flight step ran on both; the frozen worker never started step 2.
        assert pids == {0: [a.pid], 1: [a.pid, b.pid], 2: [b.pid], 3: [b.pid]}, pids
        fence = await db.fetchval("SELECT fence FROM runs WHERE id = $1", run_id)
        assert fence == 2
    assert " ERROR " not in a_log and "Traceback" not in a_log, a_log
    report(
        "lease_race_sigstop",
        resume=resume,
        runs=runs,
        lease="2s",
        takeover_s=round(takeover_s, 2),
        stale_writes_recorded=0,
        frozen_worker_log=a_log.strip().splitlines()[:3],
    )
