"""durable's side of the benchmark suite: one JSON line per scenario (see _common.py).

python benchmarks/durable_bench.py [--smoke] [--scenarios 1,2,3,4,5,6,7,8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    CpuMeter,
    add_common_args,
    emit,
    latency_fields,
    log,
    parse_scenarios,
    recreate_database_async,
)

from durable import Context, Runtime, workflow

SYSTEM = "durable"


async def noop() -> None:
    return None


@workflow(name="ten_steps")
async def ten_steps(ctx: Context, _: Any) -> int:
    for i in range(10):
        await ctx.step(f"s{i}", noop)
    return 10


@workflow(name="one_step")
async def one_step(ctx: Context, _: Any) -> int:
    await ctx.step("s", noop)
    return 1


@workflow(name="many_steps")
async def many_steps(ctx: Context, n: int) -> int:
    for _ in range(n):
        await ctx.step("s", noop)
    return n


@workflow(name="waiter")
async def waiter(ctx: Context, n: int) -> int:
    for _ in range(n):
        await ctx.step("s", noop)
    await ctx.wait_for_signal("go")
    return n


@workflow(name="sleeper")
async def sleeper(ctx: Context, _: Any) -> None:
    await ctx.sleep("nap", "1s")


WORKFLOWS = [ten_steps, one_step, many_steps, waiter, sleeper]


def runtime(dsn: str, **kw: Any) -> Runtime:
    kw.setdefault("concurrency", 1000)
    kw.setdefault("poll_interval", "200ms")
    kw.setdefault("pool_size", 10)
    return Runtime(dsn, workflows=WORKFLOWS, **kw)


async def warm_up(rt: Runtime, wf: Any, inp: Any = None) -> None:
    """Untimed runs first: open the pool's connections, prepare statements, warm caches."""
    handles = await trigger_many(rt, wf, 50, inp)
    await asyncio.gather(*(h.result(timeout=60) for h in handles))


async def trigger_many(rt: Runtime, wf: Any, n: int, inp: Any = None) -> list[Any]:
    sem = asyncio.Semaphore(50)

    async def one() -> Any:
        async with sem:
            return await rt.trigger(wf, inp)

    return list(await asyncio.gather(*(one() for _ in range(n))))


def count_get_run(rt: Runtime) -> list[int]:
    """Count the store's get_run calls (result() used to poll it for almost every run)."""
    counter = [0]
    store: Any = rt.store
    real = store.get_run

    async def counted(run_id: str) -> Any:
        counter[0] += 1
        return await real(run_id)

    store.get_run = counted
    return counter


async def scenario_1(dsn: str, runs: int, concurrency: int = 1000) -> dict[str, Any]:
    async with runtime(dsn, concurrency=concurrency) as rt:
        await warm_up(rt, ten_steps)
        gets = count_get_run(rt)
        b0 = rt.executor.committer.batches
        cpu = CpuMeter(rt.store.pool)
        await cpu.start()
        t0 = time.perf_counter()
        handles = await trigger_many(rt, ten_steps, runs)
        await asyncio.gather(*(h.result(timeout=600) for h in handles))
        wall = time.perf_counter() - t0
        used = await cpu.stop(runs * 10)
        batches = rt.executor.committer.batches - b0
    return emit(
        SYSTEM,
        "1_concurrent_10_step_runs",
        sizes={"runs": runs, "steps": 10, "concurrency": concurrency},
        wall_s=wall,
        count=runs * 10,
        unit="steps/s",
        commits=batches,
        get_run_calls=gets[0],
        loop=LOOP[0],
        **used,
    )


async def scenario_1_api(dsn: str, runs: int) -> dict[str, Any]:
    """Scenario 1 as a user writes it: Runtime's default settings, and per run a task
    that triggers it and waits for its result()."""
    async with Runtime(dsn, workflows=WORKFLOWS) as rt:

        async def one() -> Any:
            return await (await rt.trigger(ten_steps)).result(timeout=600)

        await asyncio.gather(*(one() for _ in range(50)))  # warm up
        gets = count_get_run(rt)
        cpu = CpuMeter(rt.store.pool)
        await cpu.start()
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(runs)))
        wall = time.perf_counter() - t0
        used = await cpu.stop(runs * 10)
    return emit(
        SYSTEM,
        "1_api_defaults_10_step_runs",
        sizes={"runs": runs, "steps": 10, "concurrency": rt.concurrency},
        wall_s=wall,
        count=runs * 10,
        unit="steps/s",
        get_run_calls=gets[0],
        loop=LOOP[0],
        **used,
    )


async def scenario_2(dsn: str, runs: int) -> dict[str, Any]:
    async with runtime(dsn) as rt:
        await warm_up(rt, one_step)
        t0 = time.perf_counter()
        handles = await trigger_many(rt, one_step, runs)
        await asyncio.gather(*(h.result(timeout=600) for h in handles))
        wall = time.perf_counter() - t0
    return emit(
        SYSTEM, "2_one_step_runs", sizes={"runs": runs}, wall_s=wall, count=runs, unit="runs/s"
    )


async def scenario_3(dsn: str, steps: int) -> dict[str, Any]:
    async with runtime(dsn) as rt:
        await (await rt.trigger(many_steps, 10)).result(timeout=60)  # warm up
        cpu = CpuMeter(rt.store.pool)
        await cpu.start()
        t0 = time.perf_counter()
        h = await rt.trigger(many_steps, steps)
        await h.result(timeout=600)
        wall = time.perf_counter() - t0
        used = await cpu.stop(steps)
    return emit(
        SYSTEM,
        "3_sequential_steps",
        sizes={"steps": steps},
        wall_s=wall,
        count=steps,
        unit="steps/s",
        ms_per_step=wall * 1000 / steps,
        loop=LOOP[0],
        **used,
    )


async def scenario_4(dsn: str, runs: int) -> dict[str, Any]:
    lat = []
    async with runtime(dsn) as rt:
        await (await rt.trigger(one_step, None)).result(timeout=60)  # warm up
        t0 = time.perf_counter()
        for _ in range(runs):
            t = time.perf_counter()
            await (await rt.trigger(one_step, None)).result(timeout=60)
            lat.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
    return emit(
        SYSTEM,
        "4_start_to_result_latency",
        sizes={"runs": runs},
        wall_s=wall,
        count=runs,
        unit="runs/s",
        **latency_fields(lat),
    )


async def scenario_5(dsn: str, sizes: list[int], repeat: int = 3) -> list[dict[str, Any]]:
    """Resume an evicted run: signal it, time until its result (load + replay + finish)."""
    out = []
    for n in sizes:
        times = []
        events = 0
        async with runtime(dsn, sticky_cache=0) as rt:
            for _ in range(repeat):
                h = await rt.trigger(waiter, n)
                while (await h.status()) != "suspended":
                    await asyncio.sleep(0.05)
                events = len((await rt.get_run(h.run_id)).history)
                # sticky_cache=0 dropped the coroutine: this resume replays everything.
                t0 = time.perf_counter()
                await rt.signal(h.run_id, "go")
                await h.result(timeout=600)
                times.append(time.perf_counter() - t0)
        wall = sorted(times)[len(times) // 2]
        out.append(
            emit(
                SYSTEM,
                "5_replay_evicted_run",
                sizes={"events": events, "repeats": repeat},
                wall_s=wall,
                ms=wall * 1000,
                all_ms=[round(t * 1000, 1) for t in times],
            )
        )
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


async def scenario_6(dsn: str, runs: int) -> list[dict[str, Any]]:
    results = []
    async with runtime(dsn, sticky_cache=runs) as rt:
        before = rss_mb()
        t0 = time.perf_counter()
        handles = await trigger_many(rt, waiter, runs, 1)
        while True:
            n = await rt.store.pool.fetchval("SELECT count(*) FROM runs WHERE status='suspended'")
            if n >= runs:
                break
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - t0
        after = rss_mb()
        results.append(
            emit(
                SYSTEM,
                "6a_suspended_runs_rss",
                sizes={"runs": runs},
                wall_s=wall,
                rss_mb_before=before,
                rss_mb_after=after,
                rss_mb_growth=after - before,
            )
        )
        for h in handles:
            await rt.signal(h.run_id, "go")
        await asyncio.gather(*(h.result(timeout=600) for h in handles))
    async with runtime(dsn) as rt:
        t0 = time.perf_counter()
        handles = await trigger_many(rt, sleeper, runs)
        await asyncio.gather(*(h.result(timeout=600) for h in handles))
        rows = await rt.store.pool.fetch(
            "SELECT f.created_at - s.created_at AS total, f.created_at AS fired,"
            " (s.payload) AS p FROM events s JOIN events f ON f.run_id = s.run_id"
            " AND f.kind = 'timer_fired' WHERE s.kind = 'timer_started'"
        )
        from durable import codec

        late = [(r["fired"] - codec.decode(r["p"])["until"]).total_seconds() for r in rows]
        wall = time.perf_counter() - t0
        results.append(
            emit(
                SYSTEM,
                "6b_timers_1s",
                sizes={"timers": runs},
                wall_s=wall,
                max_late_s=max(late),
                **latency_fields(late),
            )
        )
    return results


# Ids shaped like durable's own (time-ordered hex), dated in the past like real old runs.
FILL_ID = (
    "lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint - 86400000 + g), 12, '0')"
    " || substr(md5(g::text), 1, 20)"
)


async def quiet_median_s1(dsn: str, runs: int, repeat: int) -> float:
    """Median scenario-1 throughput over `repeat` runs, printing nothing."""
    values = []
    for _ in range(repeat):
        with contextlib.redirect_stdout(io.StringIO()):
            values.append((await scenario_1(dsn, runs))["throughput"])
    return float(sorted(values)[len(values) // 2])


async def scenario_7(dsn: str, runs: int, filler: int, repeat: int = 3) -> list[dict[str, Any]]:
    out = []
    empty = await quiet_median_s1(dsn, runs, repeat)
    async with runtime(dsn, worker=False) as rt:
        pool = rt.store.pool
        log(f"filling {filler} finished runs ...")
        await pool.execute(
            "INSERT INTO runs (id, workflow, version, status, input, output, created_at,"
            " updated_at, finished_at) SELECT " + FILL_ID + ", 'ten_steps', '1', 'completed',"
            " '\\x4dc0'::bytea, '\\x4d0a'::bytea, now(), now(), now()"
            " FROM generate_series(1, $1) g",
            filler,
        )
        await pool.execute(
            "INSERT INTO events (run_id, seq, pos, kind, name, payload, created_at)"
            " SELECT " + FILL_ID + ", s, s - 1, 'step_completed', 's' || s, '\\x4dc0'::bytea,"
            " now()"
            " FROM generate_series(1, $1) g, generate_series(1, 10) s",
            filler,
        )
    # Settle before measuring: vacuum and a checkpoint, so that neither autovacuum nor
    # the flush of the fill's WAL runs during the timed part.
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("VACUUM (ANALYZE) durable.runs")
        await admin.execute("VACUUM (ANALYZE) durable.events")
        await admin.execute("CHECKPOINT")
    finally:
        await admin.close()
    full = await quiet_median_s1(dsn, runs, repeat)
    out.append(
        emit(
            SYSTEM,
            "7_full_tables_vs_empty",
            sizes={"runs": runs, "filler": filler, "repeats": repeat},
            wall_s=0.0,
            empty_steps_per_s=empty,
            full_steps_per_s=full,
            ratio=full / empty,
        )
    )
    return out


WORKER_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {bench!r})
import durable_bench as b
async def main():
    async with b.runtime({dsn!r}):
        print("ready", flush=True)
        await asyncio.sleep({secs})
asyncio.run(main())
"""


async def scenario_8(dsn: str, runs: int) -> list[dict[str, Any]]:
    out = []
    for workers in (1, 2):
        async with runtime(dsn, worker=False) as rt:
            script = WORKER_SCRIPT.format(bench=str(Path(__file__).parent), dsn=dsn, secs=600)
            procs = [
                subprocess.Popen(  # noqa: ASYNC220 - started before timing
                    [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
                )
                for _ in range(workers)
            ]
            for p in procs:  # wait until each worker is up
                assert p.stdout is not None
                await asyncio.to_thread(p.stdout.readline)
            t0 = time.perf_counter()
            try:
                handles = await trigger_many(rt, ten_steps, runs)
                await asyncio.gather(*(h.result(timeout=600) for h in handles))
                wall = time.perf_counter() - t0
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(30)
        out.append(
            emit(
                SYSTEM,
                "8_worker_processes",
                sizes={"runs": runs, "steps": 10, "workers": workers},
                wall_s=wall,
                count=runs * 10,
                unit="steps/s",
            )
        )
    return out


LOOP = ["asyncio"]  # the running loop's module, for the result lines


async def main() -> None:
    LOOP[0] = type(asyncio.get_running_loop()).__module__.split(".")[0]
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--scenarios", default="1,2,3,4,5,6,7,8")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="only the sweeps behind the plots: concurrency and history length",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop: uvloop when installed (auto), or force one (see durable.loop)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of scenarios 1-4 (median reported); default 5, 1 with --smoke",
    )
    args = parser.parse_args()
    if args.sweep:
        for c in [10, 100] if args.smoke else [10, 50, 100, 250, 500, 1000]:
            dsn = await fresh_database(args.dsn)
            await scenario_1(dsn, 50 if args.smoke else 1000, concurrency=c)
        dsn = await fresh_database(args.dsn)
        await scenario_5(dsn, [100, 1000] if args.smoke else [100, 1000, 3000, 10000, 30000])
        return
    scenarios = parse_scenarios(args.scenarios, range(1, 9))
    smoke = args.smoke
    repeat = args.repeat if args.repeat is not None else (1 if smoke else 5)
    for n in scenarios:
        if n in MEDIAN_OF and repeat > 1:
            await median_of(repeat, n, lambda n=n: run_scenario(args.dsn, n, smoke))
        else:
            await run_scenario(args.dsn, n, smoke)


# Scenarios quick enough to repeat, and the figure whose median picks the reported run.
MEDIAN_OF = {1: "throughput", 2: "throughput", 3: "ms_per_step", 4: "p50_ms"}


async def median_of(repeat: int, n: int, once: Any) -> None:
    """Run a scenario `repeat` times and print the run with the median figure.

    A shared two-core machine is noisy; one run can be off by 30 % either way.
    """
    lines: list[dict[str, Any]] = []
    for _ in range(repeat):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            await once()
        lines += [json.loads(x) for x in buf.getvalue().splitlines() if x.startswith("{")]
    key = MEDIAN_OF[n]
    groups: dict[str, list[dict[str, Any]]] = {}
    for line in lines:  # a scenario may print several forms (scenario 1: two)
        groups.setdefault(line["scenario"], []).append(line)
    for group in groups.values():
        group.sort(key=lambda r: r[key])
        chosen = dict(group[len(group) // 2])
        chosen["repeats"] = repeat
        chosen[f"all_{key}"] = [r[key] for r in group]
        for field in CPU_FIELDS:  # each CPU figure's own median, too
            values = sorted(r[field] for r in group if field in r)
            if values:
                chosen[f"median_{field}"] = values[len(values) // 2]
        print(json.dumps(chosen), flush=True)


CPU_FIELDS = ("cpu_py_us_per_step", "cpu_pg_us_per_step", "cpu_us_per_step")


async def fresh_database(admin_dsn: str) -> str:
    """A new benchmark database, after a checkpoint so earlier writes are flushed."""
    # DURABLE_BENCH_DB: another name, so two checkouts can be measured one after the
    # other (or by different people) without dropping each other's database.
    dsn = await recreate_database_async(
        admin_dsn, os.environ.get("DURABLE_BENCH_DB", "bench_durable")
    )
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return dsn


async def run_scenario(admin_dsn: str, n: int, smoke: bool) -> None:
    dsn = await fresh_database(admin_dsn)
    log(f"durable scenario {n}")
    if n == 1:
        await scenario_1(dsn, 50 if smoke else 1000)
        await scenario_1_api(await fresh_database(admin_dsn), 50 if smoke else 1000)
    elif n == 2:
        await scenario_2(dsn, 100 if smoke else 2000)
    elif n == 3:
        await scenario_3(dsn, 100 if smoke else 1000)
    elif n == 4:
        await scenario_4(dsn, 20 if smoke else 200)
    elif n == 5:
        await scenario_5(dsn, [100, 1000] if smoke else [1000, 10000])
    elif n == 6:
        await scenario_6(dsn, 200 if smoke else 10000)
    elif n == 7:
        await scenario_7(dsn, 50 if smoke else 1000, 2000 if smoke else 1_000_000)
    elif n == 8:
        await scenario_8(dsn, 50 if smoke else 1000)


def run_main() -> None:
    loop = "auto"
    if "--loop" in sys.argv:
        loop = sys.argv[sys.argv.index("--loop") + 1]
    os.environ["DURABLE_LOOP"] = loop
    try:
        from durable.loop import run
    except ImportError:  # an older durable (A/B runs against main): asyncio's loop
        asyncio.run(main())
        return
    run(main())


if __name__ == "__main__":
    run_main()
