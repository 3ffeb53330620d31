"""What flow control costs: the same runs with no queue, through a queue, through keys.

    python benchmarks/flow_bench.py [--smoke] [--repeat N]

Four workloads of `runs` runs x 10 steps, measured side by side in one invocation
(interleaved, `--repeat` times, median reported), each in a fresh schema of one
benchmark database, one worker process with `concurrency=1000`:

* `no_queue`: a plain workflow, every run in flight at once;
* `no_queue_width`: a plain workflow on a worker with `concurrency=100`: the same 100
  runs in flight as the queues below allow, without a queue;
* `queue_concurrency`: `Queue(concurrency=100)`;
* `per_key`: `Queue(per_key_concurrency=1)` over 100 keys, round-robin.

One JSON line per workload (see _common.py) with `ratio`: its throughput over
`no_queue_width`'s (what the queue machinery costs at equal runs in flight), and
`ratio_unlimited`: over `no_queue`'s (what limiting to 100 in flight costs, group commit
batches included). The bar (docs/benchmarks.md): ratio >= 0.8 at full size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_args, emit, log, recreate_database_async

from durable import Context, Queue, Runtime, WorkflowDef, workflow

SYSTEM = "durable"


async def noop() -> None:
    return None


def ten_steps(name: str, queue: Queue | None) -> WorkflowDef:
    async def body(ctx: Context, _: Any) -> int:
        for i in range(10):
            await ctx.step(f"s{i}", noop)
        return 10

    body.__name__ = name
    return workflow(name=name, queue=queue)(body)


async def once(dsn: str, workload: str, runs: int, width: int) -> float:
    """Wall time of `runs` runs of one workload, triggered and awaited, in a new schema."""
    concurrency = width if workload == "no_queue_width" else 1000
    if workload in ("no_queue", "no_queue_width"):
        wf = ten_steps("plain", None)
    elif workload == "queue_concurrency":
        wf = ten_steps("queued", Queue("bench", concurrency=width))
    else:
        wf = ten_steps("keyed", Queue("bench_keys", per_key_concurrency=1))
    keyed = workload == "per_key"
    schema = f"flow_{uuid.uuid4().hex[:10]}"
    async with Runtime(
        dsn, schema=schema, workflows=[wf], concurrency=concurrency, poll_interval="200ms"
    ) as rt:
        sem = asyncio.Semaphore(50)

        async def trigger(i: int) -> Any:
            async with sem:
                return await rt.trigger(wf, None, key=f"k{i % width}" if keyed else None)

        # Warm up: pool connections, prepared statements.
        warm = await asyncio.gather(*(trigger(i) for i in range(min(50, runs))))
        await asyncio.gather(*(h.result(timeout=600) for h in warm))
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(trigger(i) for i in range(runs)))
        await asyncio.gather(*(h.result(timeout=600) for h in handles))
        return time.perf_counter() - t0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--repeat", type=int, default=None, help="default 3, 1 with --smoke")
    args = parser.parse_args()
    runs, width = (100, 10) if args.smoke else (1000, 100)
    repeat = args.repeat or (1 if args.smoke else 3)
    dsn = await recreate_database_async(args.dsn, "bench_flow")
    workloads = ["no_queue", "no_queue_width", "queue_concurrency", "per_key"]
    walls: dict[str, list[float]] = {w: [] for w in workloads}
    for r in range(repeat):
        for w in workloads:  # interleaved, so drift on a shared machine hits all alike
            log(f"flow {w} (round {r + 1}/{repeat})")
            walls[w].append(await once(dsn, w, runs, width))
    unlimited = runs * 10 / statistics.median(walls["no_queue"])
    base = runs * 10 / statistics.median(walls["no_queue_width"])
    for w in workloads:
        wall = statistics.median(walls[w])
        sizes = {"runs": runs, "steps": 10}
        if w in ("queue_concurrency", "no_queue_width"):
            sizes["concurrency"] = width
        elif w == "per_key":
            sizes["keys"] = width
            sizes["per_key_concurrency"] = 1
        emit(
            SYSTEM,
            f"flow_{w}",
            sizes=sizes,
            wall_s=wall,
            count=runs * 10,
            unit="steps/s",
            ratio=round(runs * 10 / wall / base, 3),
            ratio_unlimited=round(runs * 10 / wall / unlimited, 3),
            repeats=repeat,
            all_wall_s=[round(x, 4) for x in walls[w]],
        )


if __name__ == "__main__":
    asyncio.run(main())
