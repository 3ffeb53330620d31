"""A gap in a run's `seq` numbers: how it arises, and that nothing depends on density.

Issue 16 (remark): "seq numbers can have gaps when gather branches' direct writes
overtake a group commit and the run is then cancelled". Reproduced here step by step:
in `gather(ctx.step("slow", ...), ctx.step("a", ...), ctx.start_child(...))` step `a`
takes seq 1 and waits in the group commit (held back by the test), `start_child` takes
seq 2 and writes it at once (a direct write: its own transaction); the run is
cancelled; the held commit is then refused (the run is closed), so seq 1 is never
written. (`slow` is still running when `a` ends: a step ending as the run's only
operation keeps its record back for the run's next write, see RunExecution.defer.)

`seq` orders a run's events and is unique per run; it is not dense, and nothing reads
it as a count (docs/concepts.md, "Events"): the next event takes the largest seq + 1,
replay finds events by position, and `rt.retry` drops events the same way. The test
shows that the cancelled run's cleanup replays and records past the gap, and that the
history replays offline. Runs on both stores.
"""

from __future__ import annotations

import asyncio
from typing import Any

from durable import Context, workflow
from durable.core.events import EventKind
from durable.store.base import Batch, BatchResult
from durable.testing import replay

from .harness import report, wait_for

CLEANED: list[str] = []


@workflow(name="gap_kid")
async def gap_kid(ctx: Context, _: Any) -> None:
    await ctx.wait_for_signal("never")


async def quick() -> int:
    return 1


async def slow() -> int:
    await asyncio.sleep(60)  # still running when the run is cancelled
    return 1


def clean() -> str:
    CLEANED.append("cleaned")
    return "cleaned"


@workflow(name="gap_parent")
async def gap_parent(ctx: Context, _: Any) -> None:
    try:
        # `slow` keeps another operation of the run going when `a` ends, so `a`'s record
        # goes to the group commit at once instead of being kept back for the run's next
        # write (which start_child would then make, before its own).
        await asyncio.gather(
            ctx.step("slow", slow), ctx.step("a", quick), ctx.start_child(gap_kid, None)
        )
        await ctx.wait_for_signal("never")
    finally:
        await ctx.step("cleanup", clean)


async def test_seq_gap_after_cancel_is_harmless(backend: Any) -> None:
    CLEANED.clear()
    run_id = "gap-run"
    async with backend.runtime(gap_parent, gap_kid, poll_interval="100ms") as rt:
        store = rt.store
        original = store.commit
        gate = asyncio.Event()

        async def held_commit(batch: Batch) -> BatchResult:
            # Hold back the commit carrying step `a` until the run is cancelled.
            if any(r.run_id == run_id and r.event.name == "a" for r in batch.events):
                await gate.wait()
            result: BatchResult = await original(batch)
            return result

        store.commit = held_commit
        try:
            await rt.trigger(gap_parent, None, run_id=run_id)

            async def child_started() -> bool:
                kinds = [e.kind for e in await store.load_events(run_id)]
                return EventKind.CHILD_STARTED.value in kinds

            await wait_for(child_started, timeout=20, what="child_started written")
            await rt.cancel(run_id)
        finally:
            gate.set()

        async def cleaned() -> bool:
            kinds = [e.kind for e in await store.load_events(run_id)]
            return EventKind.CLEANUP_FINISHED.value in kinds

        await wait_for(cleaned, timeout=30, what="cleanup finished")
        events = await store.load_events(run_id)
        info = await rt.get_run(run_id)
        kid = (await store.list_runs(workflow="gap_kid", status=None, limit=10))[0]
    seqs = [(e.seq, e.kind, e.name) for e in events]
    report("seq_gap", seqs=seqs, cleaned=len(CLEANED))
    # The gap: seq 1 (step `a`) was refused after seq 2 was written.
    assert seqs == [
        (2, "child_started", "gap_kid"),
        (3, "run_cancelled", ""),
        (4, "step_completed", "cleanup"),
        (5, "cleanup_finished", ""),
    ]
    # ...and it is harmless: the cleanup ran once and recorded after it, the child was
    # cancelled with its parent, and the history replays offline.
    assert CLEANED == ["cleaned"]
    assert info.status == "cancelled"
    assert kid.status == "cancelled"
    replay(gap_parent, info, workflows=[gap_kid])
