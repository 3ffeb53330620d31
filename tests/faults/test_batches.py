"""Bounded, self-healing batches (issue 16, items 1, 4 and 5).

Group commit and trigger coalescing put many runs' writes into one statement. These
tests check that a batch is bounded by bytes as well as count, that one run's (or one
trigger's) bad write fails only that run (or that trigger) with the error recorded,
and that every other item of the batch commits exactly once.

The issue's reproductions are scaled down: instead of 72 results of 15 MB against
PostgreSQL's 1 GB message limit, the committer's byte budget is lowered to a few
hundred kB and the results are a few hundred kB each; the shape is the same.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from typing import Any

import asyncpg
import pytest

import durable.context
import durable.runtime
from durable import (
    Context,
    PayloadTooLarge,
    RetryPolicy,
    Runtime,
    ValidationError,
    WorkflowFailed,
    workflow,
)
from durable.store.base import Batch, BatchResult

from .conftest import MakeRuntime
from .harness import report

KB = 1024


def batch_bytes(batch: Batch) -> int:
    """Payload bytes of one group commit (what dominates its message size)."""
    n = sum(len(r.event.payload or b"") for r in batch.events)
    n += sum(len(f.output or b"") for f in batch.finishes)
    return n


def record_commits(rt: Runtime) -> list[int]:
    """Wrap the store's commit to record every batch's payload bytes."""
    sizes: list[int] = []
    store = rt.store
    original = store.commit

    async def commit(batch: Batch) -> BatchResult:
        sizes.append(batch_bytes(batch))
        return await original(batch)

    store.commit = commit  # type: ignore[method-assign]
    return sizes


async def run_big_results(
    make_rt: MakeRuntime, runs: int, result_kb: int, budget_kb: int, lease: str = "2s"
) -> None:
    bodies: Counter[str] = Counter()

    @workflow(name="big_result")
    async def big_result(ctx: Context, n: int) -> str:
        bodies[ctx.run_id] += 1
        return str(n % 10) * (result_kb * KB)

    async with make_rt(big_result, max_payload_bytes=4 * result_kb * KB, lease=lease) as rt:
        rt.executor.committer.max_batch_bytes = budget_kb * KB
        sizes = record_commits(rt)
        handles = await asyncio.gather(*(rt.trigger(big_result, i) for i in range(runs)))
        results = await asyncio.gather(*(h.result(timeout=60) for h in handles))
    assert [len(r) for r in results] == [result_kb * KB] * runs
    assert sorted(bodies.values()) == [1] * runs, "a body ran twice: a batch was abandoned"
    over = [s for s in sizes if s > budget_kb * KB]
    report(
        "test_commit_batches_bounded_by_bytes",
        runs=runs,
        result_kb=result_kb,
        budget_kb=budget_kb,
        batches=len(sizes),
        largest_batch_kb=max(sizes) // KB,
        over_budget=len(over),
    )
    assert not over, f"batches over the {budget_kb} kB budget: {[s // KB for s in over]} kB"


async def test_commit_batches_bounded_by_bytes(make_rt: MakeRuntime) -> None:
    """Item 1: concurrent large results are split over several commits, none over budget."""
    await run_big_results(make_rt, runs=24, result_kb=100, budget_kb=350)


@pytest.mark.faults
async def test_commit_batches_bounded_by_bytes_long(make_rt: MakeRuntime) -> None:
    # The 72 results of 15 MB at a tenth of the size, with a 16 MiB budget.
    await run_big_results(make_rt, runs=72, result_kb=1500, budget_kb=16 * KB, lease="10s")


async def test_run_too_large_for_one_commit_fails_alone(make_rt: MakeRuntime) -> None:
    """Item 1: one run's writes over the per-commit limit fail that run, once, with the
    reason recorded; the runs committed alongside it complete."""
    bodies: Counter[int] = Counter()

    @workflow(name="sized")
    async def sized(ctx: Context, kb: int) -> str:
        bodies[kb] += 1
        return "x" * (kb * KB)

    async with make_rt(sized) as rt:
        rt.executor.committer.max_batch_bytes = 200 * KB
        rt.executor.committer.max_item_bytes = 200 * KB
        handles = await asyncio.gather(*(rt.trigger(sized, kb) for kb in [1] * 10 + [300]))
        *small, big = handles
        assert [len(await h.result(timeout=20)) for h in small] == [KB] * 10
        with pytest.raises(WorkflowFailed, match="PayloadTooLarge") as err:
            await big.result(timeout=20)
        info = await rt.get_run(big.run_id)
        await asyncio.sleep(2.5)  # past the lease: a poison run would be re-claimed now
    assert info.status == "failed"
    assert info.history[-1].kind == "run_failed"
    assert bodies == {1: 10, 300: 1}
    report("test_run_too_large_for_one_commit_fails_alone", error=str(err.value)[:120])


@pytest.mark.parametrize("bad_name", ["nul\x00step", "surrogate\ud800step"])
async def test_unstorable_write_fails_only_its_run(
    make_rt: MakeRuntime, monkeypatch: pytest.MonkeyPatch, bad_name: str
) -> None:
    """Item 4: a write the database refuses for good (here a step name that bypassed
    validation) is bisected out of its batch; its run fails with the error recorded,
    and the innocent runs of the batch commit once, without re-executing."""
    monkeypatch.setattr(durable.context, "check_name", lambda name, what: name)
    steps: Counter[str] = Counter()
    gate = asyncio.Event()

    names = [f"ok{i}" for i in range(19)] + [bad_name]

    async def body(i: int) -> int:
        steps[names[i]] += 1
        await gate.wait()  # let every run's step finish together: one batch
        return i

    @workflow(name="batched")
    async def batched(ctx: Context, i: int) -> str:
        return names[await ctx.step(names[i], body, i)]

    async with make_rt(batched) as rt:
        sizes = record_commits(rt)
        handles = await asyncio.gather(*(rt.trigger(batched, i) for i in range(len(names))))
        while sum(steps.values()) < len(names):
            await asyncio.sleep(0.01)
        gate.set()
        *good, bad = handles
        assert [await h.result(timeout=20) for h in good] == names[:-1]
        with pytest.raises(WorkflowFailed) as err:
            await bad.result(timeout=20)
        await asyncio.sleep(2.5)  # past the lease: a poison run would be re-claimed now
        assert await bad.status() == "failed"
    assert "cannot be stored" in str(err.value)
    assert "DataError" in str(err.value) or "CharacterNotInRepertoire" in str(err.value)
    assert steps == dict.fromkeys(names, 1), "a step re-ran: its batch was abandoned"
    report(
        "test_unstorable_write_fails_only_its_run",
        bad_name=repr(bad_name),
        commits=len(sizes),
        step_executions=sum(steps.values()),
        error=str(err.value)[:120],
    )


async def test_exception_message_with_nul_fails_the_run_cleanly(make_rt: MakeRuntime) -> None:
    """Item 4: an exception message holding NUL is stored escaped; the run fails once."""
    calls = 0

    async def boom() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad\x00byte")

    @workflow(name="nul_error")
    async def nul_error(ctx: Context, _: Any) -> None:
        await ctx.step("boom", boom, retry=RetryPolicy(max_attempts=1))

    async with make_rt(nul_error) as rt:
        h = await rt.trigger(nul_error, None)
        with pytest.raises(WorkflowFailed) as err:
            await h.result(timeout=20)
        await asyncio.sleep(2.5)
        info = await rt.get_run(h.run_id)
    assert info.status == "failed"
    assert info.error is not None and "bad\\x00byte" in info.error
    assert calls == 1
    report("test_exception_message_with_nul_fails_the_run_cleanly", error=err.value.error)


async def test_names_with_lone_surrogates_rejected_at_the_call(make_rt: MakeRuntime) -> None:
    """Item 4: names PostgreSQL cannot store are refused where they are given."""

    @workflow(name="named")
    async def named(ctx: Context, _: Any) -> None:
        await ctx.step("\ud800", asyncio.sleep, 0)

    async with make_rt(named) as rt:
        h = await rt.trigger(named, None)
        with pytest.raises(WorkflowFailed, match=r"ValidationError.*lone surrogate"):
            await h.result(timeout=20)
        with pytest.raises(ValidationError, match="lone surrogate"):
            await rt.signal(h.run_id, "go\ud800")
        with pytest.raises(ValidationError, match="lone surrogate"):
            await rt.trigger(named, "x", run_id="id\udfff")
        with pytest.raises(ValidationError, match="at most 255"):
            await rt.trigger(named, "x", run_id="r" * 256)


# -- triggers -------------------------------------------------------------------------


async def test_one_bad_trigger_is_refused_alone(make_rt: MakeRuntime, db: Any) -> None:
    """Item 5: 49 concurrent triggers and one with a 3 kB idempotency key: that one gets
    ValidationError at the call, the 49 are written."""

    @workflow(name="t")
    async def t(ctx: Context, n: int) -> int:
        return n

    async with make_rt(t, worker=False) as rt:
        keys = [f"k{i}" for i in range(49)] + [secrets.token_urlsafe(2300)]  # ~3 kB, random
        out = await asyncio.gather(
            *(rt.trigger(t, i, idempotency_key=k) for i, k in enumerate(keys)),
            return_exceptions=True,
        )
    errors = [o for o in out if isinstance(o, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ValidationError), errors
    assert await db.fetchval("SELECT count(*) FROM runs") == 49


async def test_failing_trigger_batch_is_bisected(
    make_rt: MakeRuntime, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 5: with validation bypassed, the database refuses the 3 kB key (index row
    too large): only that trigger fails; the batch is split and the other 49 written."""
    monkeypatch.setattr(durable.runtime, "check_name", lambda name, what: name)

    @workflow(name="t")
    async def t(ctx: Context, n: int) -> int:
        return n

    async with make_rt(t, worker=False) as rt:
        keys = [f"k{i}" for i in range(49)] + [secrets.token_urlsafe(2300)]  # ~3 kB, random
        out = await asyncio.gather(
            *(rt.trigger(t, i, idempotency_key=k) for i, k in enumerate(keys)),
            return_exceptions=True,
        )
    errors = [o for o in out if isinstance(o, BaseException)]
    assert [type(e) for e in errors] == [asyncpg.ProgramLimitExceededError], errors
    assert isinstance(out[-1], asyncpg.ProgramLimitExceededError)
    assert await db.fetchval("SELECT count(*) FROM runs") == 49
    report("test_failing_trigger_batch_is_bisected", triggers=50, written=49, failed=1)


async def test_trigger_batches_bounded_by_bytes(make_rt: MakeRuntime, db: Any) -> None:
    """Item 1: trigger batches stay within their byte budget; a trigger over the budget on
    its own fails alone with PayloadTooLarge."""

    @workflow(name="t")
    async def t(ctx: Context, s: str) -> None:
        return None

    async with make_rt(t, worker=False) as rt:
        budget = 300 * KB
        rt._creator.max_bytes = budget
        sizes: list[int] = []
        original = rt.store.create_runs

        async def create_runs(runs: Any, now: Any) -> list[tuple[str, bool]]:
            sizes.append(sum(len(r.input) for r in runs))
            return await original(runs, now)

        rt.store.create_runs = create_runs  # type: ignore[method-assign]
        out = await asyncio.gather(
            *(rt.trigger(t, "x" * (100 * KB)) for _ in range(20)),
            rt.trigger(t, "y" * (400 * KB)),
            return_exceptions=True,
        )
    *ok, big = out
    assert isinstance(big, PayloadTooLarge), big
    assert all(not isinstance(o, BaseException) for o in ok), ok
    assert await db.fetchval("SELECT count(*) FROM runs") == 20
    assert sizes and max(sizes) <= budget, sizes
    report("test_trigger_batches_bounded_by_bytes", batches=len(sizes), largest_kb=max(sizes) // KB)
