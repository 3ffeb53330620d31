"""Recorded histories holding the upgrade event kinds must keep replaying.

patch_marker (patch_v1/patch_v2.jsonl: before and after the `invoice` patch),
run_continued (chain.jsonl) and cleanup_finished (cleanup.jsonl), recorded by
`record_upgrades.py`. Each is loaded into a fresh schema (whole, or cut where the run
was still going) and a worker with the current code takes it from there; no recorded
step may run again and the recorded prefix stays untouched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from durable import Context, Runtime, codec, workflow

from . import upgrade_workflows as wf

HERE = Path(__file__).resolve().parent
ALL = [wf.recorded_patch, wf.recorded_chain, wf.recorded_cleanup]


def load(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = (HERE / name).read_text().splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


async def insert(
    db: Any,
    run_id: str,
    meta: dict[str, Any],
    events: list[dict[str, Any]],
    *,
    status: str,
    **columns: Any,
) -> None:
    now = datetime.now(UTC)
    names = ", ".join(columns)
    marks = "".join(f", ${i + 7}" for i in range(len(columns)))
    await db.execute(
        "INSERT INTO runs (id, workflow, version, status, input, ready_at, created_at,"
        f" updated_at, started_at{', ' + names if names else ''})"
        f" VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $6{marks})",
        run_id,
        meta["workflow"],
        meta["version"],
        status,
        codec.encode(meta["input"]),
        now,
        *columns.values(),
    )
    await db.executemany(
        "INSERT INTO events (run_id, seq, pos, kind, name, payload, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (
                run_id,
                e["seq"],
                e["pos"],
                e["kind"],
                e["name"],
                None if e["payload"] is None else bytes.fromhex(e["payload"]),
                datetime.fromisoformat(e["created_at"]),
            )
            for e in events
        ],
    )


def unfinished_cuts(events: list[dict[str, Any]], first: int = 0) -> list[int]:
    return [k for k in range(first, len(events)) if all(e["pos"] >= 0 for e in events[:k])]


async def migrate(dsn: str, schema: str) -> None:
    async with Runtime(dsn, schema=schema, worker=False):
        pass


def signature(events: list[Any]) -> list[tuple[int, str, str]]:
    return [
        (e["seq"], e["kind"], e["name"]) if isinstance(e, dict) else (e.seq, e.kind, e.name)
        for e in events
    ]


# A run recorded before the patch existed (cut 0 would be a run that never started:
# it would take the new path, as it should). After the patch, every cut.
@pytest.mark.parametrize(
    ("file", "keep"),
    [("patch_v1.jsonl", k) for k in unfinished_cuts(load("patch_v1.jsonl")[1], 1)]
    + [("patch_v2.jsonl", k) for k in unfinished_cuts(load("patch_v2.jsonl")[1])],
)
async def test_patch_histories_replay(dsn: str, schema: str, db: Any, file: str, keep: int) -> None:
    meta, events = load(file)
    kept = events[:keep]
    await migrate(dsn, schema)
    await insert(db, "recorded", meta, kept, status="suspended" if kept else "pending")
    wf.CALLS.clear()
    async with Runtime(dsn, schema=schema, workflows=ALL, poll_interval="50ms") as rt:
        if not any(e["kind"] == "signal_received" for e in kept):
            await rt.signal("recorded", "go")
        assert await rt.handle("recorded").result(timeout=20) == meta["output"]
        info = await rt.get_run("recorded")
    recorded_steps = {e["name"] for e in kept if e["kind"] == "step_completed"}
    assert not recorded_steps & set(wf.CALLS), "replay re-ran a recorded step"
    assert signature(info.history[:keep]) == signature(kept)
    assert signature(info.history) == signature(events)


async def test_continued_history_runs_on_and_its_chain_is_followed(
    dsn: str, schema: str, db: Any
) -> None:
    meta, events = load("chain.jsonl")
    successor = codec.decode(bytes.fromhex(events[-1]["payload"]))
    await migrate(dsn, schema)
    # Whole: an ended run whose successor ended too; result() follows run_continued.
    await insert(db, "whole", meta, events, status="completed", continued_as=successor)
    await insert(db, successor, {**meta, "input": 1}, [], status="completed")
    await db.execute(
        "UPDATE runs SET output = $2, continued_from = 'whole' WHERE id = $1",
        successor,
        codec.encode(1),
    )
    # Cut before run_continued: a worker finishes it, continuing as new again.
    await insert(db, "cut", meta, events[:1], status="suspended")
    wf.CALLS.clear()
    async with Runtime(dsn, schema=schema, workflows=ALL, poll_interval="50ms") as rt:
        assert await rt.handle("whole").result(timeout=10) == meta["output"]
        assert await rt.handle("cut").result(timeout=20) == meta["output"]
        info = await rt.get_run("cut")
    assert wf.CALLS == ["work1"]  # work0 was recorded; only the successor's step ran
    assert signature(info.history) == signature(events)
    assert info.continued_as is not None


@pytest.mark.parametrize("keep", [3, 4])
async def test_cleanup_history_replays(dsn: str, schema: str, db: Any, keep: int) -> None:
    meta, events = load("cleanup.jsonl")
    kept = events[:keep]  # through run_cancelled (3), or with the cleanup's step (4)
    await migrate(dsn, schema)
    until = datetime.now(UTC) + timedelta(seconds=30)
    await insert(db, "recorded", meta, kept, status="cancelled", cleanup_until=until)
    wf.CALLS.clear()
    # worker=False: only sweep() claims, so a background claim cannot take the cleanup
    # first (which made sweep() find nothing on a loaded machine).
    async with Runtime(dsn, schema=schema, workflows=ALL, worker=False) as rt:
        assert await rt.sweep() == 1
        info = await rt.get_run("recorded")
    calls = list(wf.CALLS)
    assert calls == ([] if keep == 4 else ["release"])  # a recorded step is not re-run
    assert info.status == "cancelled"
    assert signature(info.history) == signature(events)
    assert info.history[-1].payload == "completed"


# -- the same histories offline (durable.testing.replay, the `durable replay` check) -----


def test_offline_replay_answers_patches_from_history() -> None:
    from durable.testing import replay
    from durable.testing.replay import ReplayDivergence

    wf.CALLS.clear()
    # Before the patch: `patched` answers False and takes no position; all 3 walked.
    assert replay(wf.recorded_patch, HERE / "patch_v1.json").positions == 3
    # After it: the marker owns position 0.
    assert replay(wf.recorded_patch, HERE / "patch_v2.json").positions == 4
    assert wf.CALLS == []

    @workflow(name="recorded_patch", version="1")
    async def patch_removed(ctx: Context, _: Any) -> list[str]:
        first = await ctx.step("invoice", wf.call, "invoice")
        await ctx.wait_for_signal("go")
        return [first, await ctx.step("receipt", wf.call, "receipt")]

    with pytest.raises(ReplayDivergence) as caught:
        replay(patch_removed, HERE / "patch_v2.json")
    assert (caught.value.position, caught.value.asked) == (0, "step 'invoice'")
    assert caught.value.recorded.startswith("patch 'invoice'")


def test_offline_replay_walks_a_continued_run_and_a_cancelled_runs_cleanup() -> None:
    from durable.testing import replay

    wf.CALLS.clear()
    assert replay(wf.recorded_chain, HERE / "chain.json").positions == 1
    # The cleanup's step (position 2) is replayed after WorkflowCancelled is delivered
    # at the open signal wait, as a worker did.
    assert replay(wf.recorded_cleanup, HERE / "cleanup.json").positions == 3
    assert wf.CALLS == []
