"""Crash recovery with real processes: SIGKILL a worker mid-run, another finishes the run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import MakeRuntime
from .crash_app import STEPS, crashy

ROOT = Path(__file__).resolve().parents[2]


def start_worker(dsn: str, schema: str, lease: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.crash_app", dsn, schema, lease],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


@pytest.mark.postgres_only
async def test_sigkill_mid_run_then_another_worker_completes(
    make_rt: MakeRuntime, dsn: str, schema: str, db: Any
) -> None:
    async with make_rt(crashy, worker=False) as rt:
        await db.execute("CREATE TABLE side_effects (id serial PRIMARY KEY, run_id text, step int)")
        h = await rt.trigger(crashy, {"dsn": dsn, "schema": schema})
        first = start_worker(dsn, schema, "2s")
        try:

            async def two_done() -> bool:
                n = await db.fetchval("SELECT count(*) FROM side_effects")
                return bool(n >= 3)

            await wait_for(two_done)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        finally:
            if first.poll() is None:
                first.kill()
        killed_at = await db.fetchval("SELECT count(*) FROM side_effects")
        assert await h.status() == "running"  # the dead worker still holds the lease
        second = start_worker(dsn, schema, "2s")
        try:
            assert await h.result(timeout=30) == [i * 10 for i in range(STEPS)]
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=15)
        assert second.returncode == 0
        counts = dict(
            await db.fetch("SELECT step, count(*) FROM side_effects GROUP BY step ORDER BY step")
        )
        completed = await db.fetch(
            "SELECT name, count(*) FROM events WHERE kind = 'step_completed' GROUP BY name"
        )
        # every step's result is recorded exactly once
        assert sorted(r["count"] for r in completed) == [1] * STEPS
        # a step body ran twice at most once: the one in flight when the worker died
        assert sum(counts.values()) - STEPS <= 1
        assert all(c in (1, 2) for c in counts.values())
        assert killed_at >= 3
        print(f"side effects per step after SIGKILL at {killed_at} effects: {counts}")
