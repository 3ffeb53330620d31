"""Trigger cost with and without an idempotency key (the run archive's decision).

python benchmarks/trigger_keys_bench.py [--smoke] [--dsn ADMIN_DSN] [--repeat N]

A client `Runtime` (worker=False) on a fresh database triggers, per round: N runs one
after another with a key each, the same without keys (µs per trigger), and 4N keyed
runs at once (triggers/s). Keyed runs stay in `runs` (durable/store/pg_archive.py):
making a keyed trigger also check the archive under its advisory lock was measured with
this script, interleaved with main (docs/benchmarks.md, "Retention on partitioned
history"), at 0.53 -> 1.93 ms per sequential keyed trigger, and rejected.
Run it before and after a change to the trigger path.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_common_args, emit, recreate_database_async

from durable import Context, Runtime, workflow

SYSTEM = "durable"


@workflow(name="bench_keyed_noop")
async def noop(ctx: Context, x: int) -> int:
    return x


async def measure(admin_dsn: str, n: int, repeat: int) -> None:
    dsn = await recreate_database_async(admin_dsn, "bench_trigger_keys")
    keyed_us: list[float] = []
    plain_us: list[float] = []
    burst: list[float] = []
    async with Runtime(dsn, workflows=[noop], worker=False) as rt:
        for _ in range(repeat):
            tag = uuid.uuid4().hex[:8]
            t = time.perf_counter()
            for i in range(n):
                await rt.trigger(noop, i, idempotency_key=f"{tag}-s{i}")
            keyed_us.append((time.perf_counter() - t) / n * 1e6)
            t = time.perf_counter()
            for i in range(n):
                await rt.trigger(noop, i)
            plain_us.append((time.perf_counter() - t) / n * 1e6)
            t = time.perf_counter()
            await asyncio.gather(
                *(rt.trigger(noop, i, idempotency_key=f"{tag}-c{i}") for i in range(4 * n))
            )
            burst.append(4 * n / (time.perf_counter() - t))
    emit(
        SYSTEM,
        "trigger_with_and_without_key",
        sizes={"sequential": n, "concurrent": 4 * n, "repeats": repeat},
        wall_s=sum(keyed_us + plain_us) * n / 1e6,
        keyed_us_per_trigger=statistics.median(keyed_us),
        plain_us_per_trigger=statistics.median(plain_us),
        keyed_concurrent_per_s=statistics.median(burst),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(measure(args.dsn, 50 if args.smoke else 500, args.repeat))


if __name__ == "__main__":
    main()
