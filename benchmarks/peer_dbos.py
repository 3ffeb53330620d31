"""Peer benchmark: DBOS Transact (PyPI ``dbos``, 3.4.x) on local PostgreSQL.

Usage::

    python benchmarks/peer_dbos.py [--smoke] [--scenarios 1,2,3,4]
                                   [--api sync|async] [--max-inflight N] [--dsn DSN]

Scenarios (full / ``--smoke`` sizes):

1. 1,000 (50) runs x 10 no-op steps, all started concurrently -> steps/s
   (plus per-run start-to-result p50/p99).
2. 2,000 (100) runs x 1 no-op step, all started concurrently -> runs/s.
3. One run x 1,000 (100) sequential no-op steps -> ms per step.
4. Start-to-result latency of a 1-step run, 200 (20) in a row -> p50/p99 ms.

API choice.  DBOS offers two documented ways to run workflows in-process:

* ``sync`` (default): plain ``def`` functions under ``@DBOS.workflow()`` /
  ``@DBOS.step()``, started with ``DBOS.start_workflow(...)`` and awaited with
  ``handle.get_result()``.  The workflow-status insert runs on the calling
  thread, the body on DBOS's (unbounded) executor thread pool.  Concurrent
  starts in scenarios 1-2 are issued from one client thread per in-flight run.
* ``async``: the same on ``async def`` functions, ``await
  DBOS.start_workflow_async(...)`` / ``await handle.get_result()``.  Workflows
  run as asyncio tasks, but every system-database write is still a synchronous
  SQLAlchemy + psycopg call that DBOS pushes to its thread pool with
  ``asyncio.to_thread`` -- one extra thread hop per write, no async driver.

Measured on a 2-core box: the two are within noise of each other when all
runs are in flight at once (scenarios 1-2), and ``sync`` is clearly faster
for sequential work (scenario 3: ~2.8 vs ~3.5 ms/step; scenario 4: p50 ~5 vs
~8 ms), so ``sync`` is the default.  ``--api async`` is kept for comparison.

``--max-inflight N`` caps runs in flight in scenarios 1-2 (default 0 = all
started at once, as the scenarios are specified).  DBOS itself has no cap on
directly started workflows; a client-side cap of ~16 roughly doubles its
throughput here, so a capped run is worth reporting next to the default.
DBOS is otherwise run with its defaults (system-DB pool of 20 connections
with pre-ping, LISTEN/NOTIFY on).

Output: one JSON line per scenario on stdout (see ``_common.emit``); DBOS's
own logs go to stderr.  The database ``bench_dbos`` is dropped and recreated
at start, and DBOS is torn down with ``DBOS.destroy()`` before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from _common import (
    add_common_args,
    emit,
    latency_fields,
    log,
    parse_scenarios,
    recreate_database,
)
from dbos import DBOS, DBOSConfig

SYSTEM = "dbos"
DB_NAME = "bench_dbos"


# --------------------------------------------------------------------------
# Workflows.  Registered at import time, before DBOS.launch().
# --------------------------------------------------------------------------


@DBOS.step()
async def noop_step_async() -> None:
    return None


@DBOS.workflow()
async def steps_wf_async(n_steps: int) -> int:
    for _ in range(n_steps):
        await noop_step_async()
    return n_steps


@DBOS.step()
def noop_step_sync() -> None:
    return None


@DBOS.workflow()
def steps_wf_sync(n_steps: int) -> int:
    for _ in range(n_steps):
        noop_step_sync()
    return n_steps


# --------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    s1_runs: int
    s1_steps: int
    s2_runs: int
    s3_steps: int
    s4_runs: int

    @classmethod
    def pick(cls, smoke: bool) -> Sizes:
        if smoke:
            return cls(s1_runs=50, s1_steps=10, s2_runs=100, s3_steps=100, s4_runs=20)
        return cls(s1_runs=1000, s1_steps=10, s2_runs=2000, s3_steps=1000, s4_runs=200)


def _check(results: list[int], expected: int) -> None:
    bad = [r for r in results if r != expected]
    if bad:
        raise RuntimeError(f"{len(bad)} workflow(s) returned {bad[0]!r}, expected {expected}")


# --------------------------------------------------------------------------
# async API
# --------------------------------------------------------------------------


async def _timed_run_async(n_steps: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    handle = await DBOS.start_workflow_async(steps_wf_async, n_steps)
    result = await handle.get_result()
    return result, time.perf_counter() - t0


async def _concurrent_async(
    runs: int, n_steps: int, max_inflight: int
) -> tuple[float, list[float]]:
    sem = asyncio.Semaphore(max_inflight if max_inflight > 0 else runs)

    async def one() -> tuple[int, float]:
        async with sem:
            return await _timed_run_async(n_steps)

    t0 = time.perf_counter()
    out = await asyncio.gather(*(one() for _ in range(runs)))
    wall = time.perf_counter() - t0
    _check([r for r, _ in out], n_steps)
    return wall, [lat for _, lat in out]


async def _sequential_async(runs: int, n_steps: int) -> tuple[float, list[float]]:
    lats: list[float] = []
    t0 = time.perf_counter()
    for _ in range(runs):
        result, lat = await _timed_run_async(n_steps)
        _check([result], n_steps)
        lats.append(lat)
    return time.perf_counter() - t0, lats


Runner = Callable[[int, int], tuple[float, list[float]]]


# --------------------------------------------------------------------------
# sync API
# --------------------------------------------------------------------------


def _timed_run_sync(n_steps: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    handle = DBOS.start_workflow(steps_wf_sync, n_steps)
    result = handle.get_result()
    return result, time.perf_counter() - t0


def _make_concurrent_sync(max_inflight: int) -> Runner:
    def run(runs: int, n_steps: int) -> tuple[float, list[float]]:
        threads = min(max_inflight, runs) if max_inflight > 0 else runs
        with ThreadPoolExecutor(max_workers=threads) as pool:
            t0 = time.perf_counter()
            out = list(pool.map(lambda _: _timed_run_sync(n_steps), range(runs)))
            wall = time.perf_counter() - t0
        _check([r for r, _ in out], n_steps)
        return wall, [lat for _, lat in out]

    return run


def _sequential_sync(runs: int, n_steps: int) -> tuple[float, list[float]]:
    lats: list[float] = []
    t0 = time.perf_counter()
    for _ in range(runs):
        result, lat = _timed_run_sync(n_steps)
        _check([result], n_steps)
        lats.append(lat)
    return time.perf_counter() - t0, lats


# --------------------------------------------------------------------------
# Scenario driver (API-agnostic)
# --------------------------------------------------------------------------


def run_scenarios(
    scenarios: list[int],
    sizes: Sizes,
    api: str,
    concurrent: Runner,
    sequential: Runner,
) -> None:
    # Warm-up: connection pool, prepared statements, code paths. Not timed.
    concurrent(10, 1)
    sequential(3, 1)

    for sc in scenarios:
        log(f"[dbos] scenario {sc} ({api})")
        if sc == 1:
            wall, lats = concurrent(sizes.s1_runs, sizes.s1_steps)
            emit(
                SYSTEM,
                "1:concurrent-runs-x10-steps",
                sizes={"runs": sizes.s1_runs, "steps_per_run": sizes.s1_steps},
                wall_s=wall,
                count=sizes.s1_runs * sizes.s1_steps,
                unit="steps/s",
                runs_per_s=round(sizes.s1_runs / wall, 2),
                api=api,
                **latency_fields(lats),
            )
        elif sc == 2:
            wall, lats = concurrent(sizes.s2_runs, 1)
            emit(
                SYSTEM,
                "2:concurrent-runs-x1-step",
                sizes={"runs": sizes.s2_runs, "steps_per_run": 1},
                wall_s=wall,
                count=sizes.s2_runs,
                unit="runs/s",
                api=api,
                **latency_fields(lats),
            )
        elif sc == 3:
            wall, _ = sequential(1, sizes.s3_steps)
            emit(
                SYSTEM,
                "3:one-run-sequential-steps",
                sizes={"runs": 1, "steps_per_run": sizes.s3_steps},
                wall_s=wall,
                count=sizes.s3_steps,
                unit="steps/s",
                ms_per_step=wall * 1000.0 / sizes.s3_steps,
                api=api,
            )
        elif sc == 4:
            wall, lats = sequential(sizes.s4_runs, 1)
            emit(
                SYSTEM,
                "4:start-to-result-latency",
                sizes={"runs": sizes.s4_runs, "steps_per_run": 1},
                wall_s=wall,
                count=sizes.s4_runs,
                unit="runs/s",
                api=api,
                **latency_fields(lats),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--scenarios", default="1,2,3,4", help="comma list of 1..4")
    parser.add_argument(
        "--api",
        choices=("async", "sync"),
        default="sync",
        help="DBOS API to drive (default: sync, DBOS's fastest here; see module doc)",
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=0,
        help="cap on runs in flight in scenarios 1-2 (0 = all runs at once, default)",
    )
    parser.add_argument("--log-level", default="WARNING", help="DBOS log level (stderr)")
    args = parser.parse_args()
    scenarios = parse_scenarios(args.scenarios, range(1, 5))
    sizes = Sizes.pick(args.smoke)

    dsn = recreate_database(args.dsn, DB_NAME)
    config: DBOSConfig = {
        "name": "bench-dbos",
        "system_database_url": dsn,
        "log_level": args.log_level,
        "application_version": "bench",
    }
    DBOS(config=config)
    try:
        DBOS.launch()
        if args.api == "async":

            def conc(runs: int, n: int) -> tuple[float, list[float]]:
                return loop.run_until_complete(_concurrent_async(runs, n, args.max_inflight))

            def seq(runs: int, n: int) -> tuple[float, list[float]]:
                return loop.run_until_complete(_sequential_async(runs, n))

            # One loop for the whole process, so DBOS's per-loop setup happens once.
            loop = asyncio.new_event_loop()
            try:
                run_scenarios(scenarios, sizes, "async", conc, seq)
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
        else:
            run_scenarios(
                scenarios,
                sizes,
                "sync",
                _make_concurrent_sync(args.max_inflight),
                _sequential_sync,
            )
    finally:
        DBOS.destroy(destroy_registry=False)


if __name__ == "__main__":
    main()
