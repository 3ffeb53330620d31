"""Recorded histories must keep replaying: the compatibility check of every core change.

Each *.jsonl file beside this test is a real run's history, recorded by `record.py`. The
test loads it (whole, or cut after any event) into a fresh schema as a half-finished
run, lets a worker finish it, and checks that replay re-ran no recorded step and that the
run ends with the recorded output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from durable import Runtime, codec

from . import workflows

HERE = Path(__file__).resolve().parent
RECORDED = json.loads((HERE / "order_v1.jsonl").read_text().splitlines()[0])
EVENTS = [json.loads(line) for line in (HERE / "order_v1.jsonl").read_text().splitlines()[1:]]
# Every prefix of the history that leaves the run unfinished.
CUTS = [k for k in range(len(EVENTS)) if all(e["pos"] >= 0 for e in EVENTS[:k])]


@pytest.mark.parametrize("keep", CUTS)
async def test_recorded_history_replays(dsn: str, schema: str, db: Any, keep: int) -> None:
    kept = EVENTS[:keep]
    async with Runtime(dsn, schema=schema, worker=False):
        pass  # applies the migrations
    now = datetime.now(UTC)
    await db.execute(
        "INSERT INTO runs (id, workflow, version, status, input, ready_at, created_at,"
        " updated_at, started_at) VALUES ('recorded', $1, $2, $3, $4, $5, $5, $5, $6)",
        RECORDED["workflow"],
        RECORDED["version"],
        "suspended" if kept else "pending",
        codec.encode(RECORDED["input"]),
        now,
        now if kept else None,
    )
    await db.executemany(
        "INSERT INTO events (run_id, seq, pos, kind, name, payload, created_at)"
        " VALUES ('recorded', $1, $2, $3, $4, $5, $6)",
        [
            (
                e["seq"],
                e["pos"],
                e["kind"],
                e["name"],
                None if e["payload"] is None else bytes.fromhex(e["payload"]),
                datetime.fromisoformat(e["created_at"]),
            )
            for e in kept
        ],
    )
    workflows.CALLS.clear()
    async with Runtime(
        dsn, schema=schema, workflows=[workflows.recorded_order], poll_interval="50ms"
    ) as rt:
        if not any(e["kind"] == "signal_received" for e in kept):
            await rt.signal("recorded", "review", {"ok": True})
        assert await rt.handle("recorded").result(timeout=20) == RECORDED["output"]
        info = await rt.get_run("recorded")
    recorded_steps = {e["name"] for e in kept if e["kind"] == "step_completed"}
    assert not recorded_steps & set(workflows.CALLS), "replay re-ran a recorded step"
    assert set(workflows.CALLS) == {"charge", "ship"} - recorded_steps
    # The recorded prefix is untouched, and the rest was appended after it.
    assert [(e.seq, e.kind, e.name) for e in info.history[:keep]] == [
        (e["seq"], e["kind"], e["name"]) for e in kept
    ]
    assert info.history[-1].kind == "run_completed"
