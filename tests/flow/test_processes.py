"""Flow control across real worker processes on one PostgreSQL database.

Three `tests.flow.worker_app` processes claim from the same queues; each limit is
checked on the start and finish times the database recorded for every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from durable import Runtime

from .helpers import max_overlap, max_per_key_overlap, max_starts_in_window, spans
from .worker_app import FIVE, HOLD, LANES, PER_KEY, RATED, SYNC, WORKFLOWS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.postgres_only


def _spawn(dsn: str, schema: str, lease: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.flow.worker_app", dsn, schema, lease],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


@contextlib.contextmanager
def workers(dsn: str, schema: str, n: int = 3, lease: str = "5s") -> Iterator[list[Any]]:
    procs = [_spawn(dsn, schema, lease) for _ in range(n)]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        yield procs
    finally:
        _stop(procs)


@contextlib.asynccontextmanager
async def client(dsn: str, schema: str) -> AsyncIterator[Runtime]:
    # Creates the schema before any worker starts, and triggers without executing.
    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS, worker=False) as rt:
        yield rt


async def _finish(rt: Runtime, handles: list[Any], timeout: float = 60) -> list[Any]:
    return [await h.result(timeout=timeout) for h in handles]


@pytest.mark.parametrize(
    "per_key",
    [5, pytest.param(20, marks=pytest.mark.faults, id="20-runs-per-key")],
)
async def test_per_key_concurrency_one_over_20_keys(dsn: str, schema: str, per_key: int) -> None:
    total = 20 * per_key
    async with client(dsn, schema) as rt:
        with workers(dsn, schema):
            handles = [await rt.trigger(PER_KEY, i, key=f"tenant-{i % 20}") for i in range(total)]
            assert await _finish(rt, handles) == list(range(total))
    done = await spans(dsn, schema, None)
    assert len(done) == total
    per_key = max_per_key_overlap(done)
    assert len(per_key) == 20
    assert set(per_key.values()) == {1}
    assert max_overlap(done) > 1  # keys ran side by side


async def test_global_concurrency_five_across_processes(dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        with workers(dsn, schema):
            handles = [await rt.trigger(FIVE, i) for i in range(100)]
            await _finish(rt, handles)
    done = await spans(dsn, schema, None)
    assert len(done) == 100
    assert max_overlap(done) == 5


async def test_rate_limit_20_per_second_while_saturated(dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        handles = [await rt.trigger(RATED, i) for i in range(50)]  # saturated from the start
        with workers(dsn, schema):
            await _finish(rt, handles)
    done = await spans(dsn, schema, None)
    assert max_starts_in_window(done, 1.0) == 20
    starts = sorted(s.started for s in done)
    assert (starts[-1] - starts[0]).total_seconds() >= 2.0  # 50 starts need 3 windows


async def test_priority_order_across_processes(dsn: str, schema: str) -> None:
    prios = [7, 3, 9, 0, 3, 5, 1, 0, 9, 2]
    async with client(dsn, schema) as rt:
        handles = [await rt.trigger(LANES, i, priority=p) for i, p in enumerate(prios)]
        with workers(dsn, schema):
            await _finish(rt, handles)
    by_id = {s.run_id: s for s in await spans(dsn, schema, None)}
    started = sorted(range(len(prios)), key=lambda i: by_id[handles[i].run_id].started)
    assert started == sorted(range(len(prios)), key=lambda i: (prios[i], i))


async def test_debounce_50_triggers_in_a_second_give_one_run(dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        with workers(dsn, schema):
            handles = []
            for i in range(50):
                handles.append(await rt.trigger(SYNC, i, debounce=("account-7", "400ms")))
                await asyncio.sleep(0.02)
            assert len({h.run_id for h in handles}) == 1
            assert await handles[0].result(timeout=30) == 49
    done = await spans(dsn, schema, None)
    assert len(done) == 1


async def test_sigkilled_workers_slots_come_back_after_its_lease(
    dsn: str, schema: str, db: Any
) -> None:
    async with client(dsn, schema) as rt:
        handles = [await rt.trigger(HOLD, i) for i in range(6)]
        with workers(dsn, schema, n=1, lease="1s") as (victim,):

            async def held() -> int:
                n = await db.fetchval(
                    "SELECT count(*) FROM runs WHERE status = 'running' AND started_at IS NOT NULL"
                )
                return int(n)

            async with asyncio.timeout(20):
                while await held() < 2:
                    await asyncio.sleep(0.02)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        taken = {
            r["id"] for r in await db.fetch("SELECT id FROM runs WHERE started_at IS NOT NULL")
        }
        assert len(taken) == 2
        stats = await rt.queue_stats("hold")
        assert (stats.active, stats.pending) == (2, 4)  # the dead worker's runs keep slots
        with workers(dsn, schema, n=2, lease="1s"):
            assert await _finish(rt, handles) == list(range(6))
        assert (await rt.queue_stats("hold")).active == 0
    done = await spans(dsn, schema, None)
    assert max_overlap(done) == 2
    # The runs the dead worker held kept their first start: their slot was never given up.
    later = [s for s in done if s.run_id not in taken]
    first_end = min(s.finished for s in done if s.run_id in taken)
    assert all(s.started >= first_end for s in later)
