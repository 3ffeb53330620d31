"""Scale-out on Citus: scenario-1 throughput (N runs x 10 steps) with 1, 2 and 4 schemas.

python benchmarks/citus_bench.py --dsn COORDINATOR_DSN [--smoke] [--schemas 1,2,4]
    [--runs N] [--mode processes|one-process]

Needs a Citus cluster with schema-based sharding (a local one: ../shared/citus/
cluster-up.sh, see docs/scaling.md); this script turns
`citus.enable_schema_based_sharding` on for the DSN's database. For each schema count K
it recreates K schemas (each placed whole on a worker node by Citus), then runs:

- `processes` (default): one worker process per schema, as a deployment would scale out
  (each a `Runtime(dsn, schema=S)` that triggers its N runs and awaits their results);
- `one-process`: one process serving all K schemas on one event loop, as
  `durable worker APP --schemas a,b,...` does.

All processes warm up first, then start together; throughput is the K x N x 10 steps over
the wall time from the common start to the last result. One JSON line per K (see
_common.py), with the schemas' placement (worker ports). On a shared 2-core machine the
figures are indicative only: the coordinator, both workers and the Python processes all
share the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit
from durable_bench import ten_steps, trigger_many

from durable import Runtime

SYSTEM = "durable-citus"


async def prepare(dsn: str, schemas: list[str]) -> dict[str, list[int]]:
    """Turn schema-based sharding on, recreate the schemas (migrated), return placement."""
    conn = await asyncpg.connect(dsn)
    try:
        db = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{db}" SET citus.enable_schema_based_sharding = on')
        for name in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()
    for name in schemas:  # new connections: the database setting applies
        async with Runtime(dsn, schema=name, worker=False, listen=False):
            pass
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT n.nspname AS schema, s.nodeport AS port FROM citus_shards s"
            " JOIN pg_class c ON c.oid = s.table_name"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1::text[])",
            schemas,
        )
    finally:
        await conn.close()
    placed: dict[str, list[int]] = {name: [] for name in schemas}
    for row in rows:
        placed[row["schema"]].append(row["port"])
    return placed


async def drive(dsn: str, schemas: list[str], runs: int, start_at: float) -> dict[str, float]:
    """Warm up, wait for `start_at` (time.time()), run `runs` per schema; times and count."""
    async with contextlib.AsyncExitStack() as stack:
        rts = [
            await stack.enter_async_context(
                Runtime(dsn, schema=s, workflows=[ten_steps], concurrency=1000, pool_size=10)
            )
            for s in schemas
        ]
        for rt in rts:
            warm = await trigger_many(rt, ten_steps, 20)
            await asyncio.gather(*(h.result(timeout=300) for h in warm))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        t0 = time.time()

        async def one(rt: Runtime) -> None:
            handles = await trigger_many(rt, ten_steps, runs)
            await asyncio.gather(*(h.result(timeout=900) for h in handles))

        await asyncio.gather(*(one(rt) for rt in rts))
        return {"t0": t0, "t1": time.time(), "steps": len(schemas) * runs * 10.0}


def child_main(args: argparse.Namespace) -> None:
    out = asyncio.run(drive(args.dsn, args.child.split(","), args.runs, args.start_at))
    print(json.dumps(out), flush=True)


def measure(args: argparse.Namespace, k: int) -> None:
    schemas = [f"citus_bench_{k}_{i}" for i in range(k)]
    placed = asyncio.run(prepare(args.dsn, schemas))
    groups = [[s] for s in schemas] if args.mode == "processes" else [schemas]
    start_at = time.time() + args.warmup_s
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--dsn",
                args.dsn,
                "--runs",
                str(args.runs),
                "--child",
                ",".join(group),
                "--start-at",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for group in groups
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a benchmark process failed (exit {proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    late = [r for r in results if r["t0"] - start_at > 1.0]
    wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    emit(
        SYSTEM,
        f"citus_{k}_schemas",
        sizes={"schemas": k, "runs_per_schema": args.runs, "steps": 10},
        wall_s=wall,
        count=sum(r["steps"] for r in results),
        unit="steps/s",
        mode=args.mode,
        placement=placed,
        late_starts=len(late),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True, help="the Citus coordinator's DSN")
    parser.add_argument("--smoke", action="store_true", help="small sizes (50 runs per schema)")
    parser.add_argument("--schemas", default="1,2,4", help="schema counts to measure")
    parser.add_argument("--runs", type=int, default=None, help="runs per schema (default 1000)")
    parser.add_argument("--mode", choices=["processes", "one-process"], default="processes")
    parser.add_argument("--warmup-s", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 50 if args.smoke else 1000
    if args.child is not None:
        child_main(args)
        return
    for k in (int(x) for x in args.schemas.split(",")):
        measure(args, k)


if __name__ == "__main__":
    main()
