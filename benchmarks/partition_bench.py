"""Retention on partitioned history: purge a month of history (30 day partitions).

python benchmarks/partition_bench.py [--smoke] [--dsn ADMIN_DSN] [--events N]
    [--events-per-run K]

Fills a fresh database (`bench_partitions`) with N history events (default 10,000,000;
100,000 with --smoke) in runs of K events (default 11: a scenario-1 run writes 10
`step_completed` and one `run_completed`), spread over 30 consecutive days of runs that
all ended 45 to 15 days ago, plus one day of recent runs that must stay. Then it times
`Runtime.purge_runs("14d")`, which drops the 30 day partitions (events and run_events)
and deletes their runs' rows, and reports the part spent dropping partitions
(`purge_partitions`) and the row-by-row remainder. Rows are generated server-side
(INSERT ... SELECT generate_series), so filling 10M events takes minutes, not hours.

Before the purge it runs the archiver (durable/store/pg_archive.py: what workers do
hourly), which moves the month's finished runs out of `runs` into the day partitions of
`runs_archive`; its time is reported apart (`archive_s`, `archive_per_day_s`), since a
deployment pays it a day at a time in the background. The issue's bar: a month purged in
under a second at 10M events.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_common_args, emit, log, recreate_database_async

from durable import Runtime
from durable.store import pg_archive, pg_partitions

SYSTEM = "durable"
DAYS = 30


async def fill(dsn: str, events: int, per_run: int) -> int:
    """Create the 30 old day partitions (and today's), fill them; return runs created."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=45)
    runs_per_day = max(1, events // per_run // DAYS)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "durable"})
    try:
        await pg_partitions.ensure_partitions(conn, "durable", first, ahead=DAYS - 1)
        for d in range(DAYS + 1):
            day = first + timedelta(days=d) if d < DAYS else today
            n = runs_per_day if d < DAYS else max(1, runs_per_day // 10)
            ended = (
                datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
                if d < DAYS
                else datetime.now(UTC)
            )
            low = pg_partitions.id_bound(day)
            # Run ids as durable/ids.py makes them: the day's millisecond prefix, then
            # a unique tail; every run ended at `ended`.
            await conn.execute(
                "INSERT INTO runs (id, workflow, version, status, created_at, updated_at,"
                " started_at, finished_at)"
                " SELECT $1 || lpad(to_hex(i), 20, '0'), 'ten_steps', '1', 'completed',"
                "  $2, $2, $2, $2 FROM generate_series(1, $3) i",
                low,
                ended,
                n,
            )
            await conn.execute(
                "INSERT INTO events (run_id, seq, pos, kind, name, payload, created_at)"
                " SELECT $1 || lpad(to_hex(i), 20, '0'), s, s,"
                "  CASE WHEN s = $4 THEN 'run_completed' ELSE 'step_completed' END,"
                "  's' || s, '\\x01c0'::bytea, $2"
                " FROM generate_series(1, $3) i, generate_series(1, $4) s",
                low,
                ended,
                n,
                per_run,
            )
            log(f"day {day}: {n} runs, {n * per_run} events")
        await conn.execute("VACUUM ANALYZE runs")
        await conn.execute("ANALYZE events")
        return runs_per_day * DAYS
    finally:
        await conn.close()


async def measure(admin_dsn: str, events: int, per_run: int) -> None:
    dsn = await recreate_database_async(admin_dsn, "bench_partitions")
    async with Runtime(dsn, worker=False, listen=False):
        pass  # migrates: partitions from today on
    t_fill = time.perf_counter()
    old_runs = await fill(dsn, events, per_run)
    log(f"filled in {time.perf_counter() - t_fill:.1f} s")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "durable"})
    try:
        total_events = await conn.fetchval("SELECT count(*) FROM events")
        parts_before = len(await pg_partitions.list_partitions(conn, "events"))
        # What workers do hourly from their heartbeat: move the finished runs of past
        # days out of `runs` into the day partitions of `runs_archive`.
        t_arch = time.perf_counter()
        archived = await pg_archive.archive(conn, "durable")
        archive_s = time.perf_counter() - t_arch
        log(f"archived {archived} runs in {archive_s:.2f} s")
        # The archive runs days before the purge: autovacuum clears the moved rows'
        # dead tuples from `runs` and checkpoints write its pages meanwhile. Here the
        # purge follows at once, so do both first.
        await conn.execute("VACUUM ANALYZE runs")
        await conn.execute("CHECKPOINT")
        async with Runtime(dsn, worker=False, listen=False) as rt:
            cutoff = rt.clock.now() - timedelta(days=14)
            t0 = time.perf_counter()
            dropped_runs = await rt.store.purge_partitions(cutoff)
            t_drop = time.perf_counter() - t0
            by_rows = await rt.purge_runs("14d")  # the row-by-row remainder (none expected)
            wall = time.perf_counter() - t0
        parts_after = len(await pg_partitions.list_partitions(conn, "events"))
        left_events = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    emit(
        SYSTEM,
        "purge_month_of_partitions",
        sizes={"events": int(total_events), "days": DAYS, "events_per_run": per_run},
        wall_s=wall,
        drop_s=t_drop,
        archive_s=archive_s,
        archive_per_day_s=archive_s / DAYS,
        runs_archived=archived,
        partitions_dropped=parts_before - parts_after,
        runs_deleted=dropped_runs + by_rows,
        runs_expected=old_runs,
        events_left=int(left_events),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--events", type=int, default=None, help="history events in total")
    parser.add_argument("--events-per-run", type=int, default=11)
    args = parser.parse_args()
    events = args.events or (100_000 if args.smoke else 10_000_000)
    asyncio.run(measure(args.dsn, events, args.events_per_run))


if __name__ == "__main__":
    main()
