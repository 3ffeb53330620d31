"""Raw asyncpg physical ceiling for durable-workflow writes.

Usage: ``python benchmarks/ceiling.py [--smoke] [--dsn DSN] [--scenarios a,b,c]``

Measures what PostgreSQL on this box can do with no engine in the way, on a
table shaped like a step journal::

    events(run_id text, seq int, kind text, payload bytea, primary key(run_id, seq))

Scenarios:

* ``a`` -- one single-row INSERT per commit (autocommit), one connection:
  the cost of an fsync'd commit; commits/s and per-commit p50/p99.
* ``b`` -- 100 rows per commit as ONE multi-row INSERT (``unnest`` of arrays),
  one connection; rows/s.  ``b-executemany`` is the same batch sent with
  ``executemany`` inside one transaction, for comparison.
* ``c`` -- scenario 1's write shape: 1,000 runs x 10 steps = 10,000 rows,
  arriving interleaved across runs (step k of every run, then step k+1) and
  flushed in batches of ~100 rows per commit, one connection; rows/s.
  ``c-4conn`` flushes the same batches from 4 connections in parallel (what a
  group-commit writer with a small pool could reach).

The database ``bench_ceiling`` is dropped and recreated at start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence

import asyncpg
from _common import add_common_args, emit, latency_fields, log, recreate_database_async

SYSTEM = "asyncpg-ceiling"
DB_NAME = "bench_ceiling"

DDL = """
CREATE TABLE events (
    run_id  text  NOT NULL,
    seq     int   NOT NULL,
    kind    text  NOT NULL,
    payload bytea NOT NULL,
    PRIMARY KEY (run_id, seq)
)
"""

INSERT_ONE = "INSERT INTO events (run_id, seq, kind, payload) VALUES ($1, $2, $3, $4)"
INSERT_UNNEST = (
    "INSERT INTO events (run_id, seq, kind, payload) "
    "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bytea[])"
)

# A small step-result payload (roughly an encoded ``None``/small value plus envelope).
PAYLOAD = b"\x81\xa1v\xc0" + os.urandom(12)

Row = tuple[str, int, str, bytes]


async def reset_table(conn: asyncpg.Connection) -> None:
    await conn.execute("DROP TABLE IF EXISTS events")
    await conn.execute(DDL)
    await conn.execute("CHECKPOINT")


async def insert_batch_unnest(conn: asyncpg.Connection, rows: Sequence[Row]) -> None:
    await conn.execute(
        INSERT_UNNEST,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )


async def warm_up(conn: asyncpg.Connection, batch_size: int) -> None:
    """Prepare statements and touch the table outside the timed region."""
    rows = [(f"warm-{i}", 0, "warm", PAYLOAD) for i in range(batch_size)]
    await insert_batch_unnest(conn, rows)
    await conn.executemany(INSERT_ONE, [(r[0], 1, r[2], r[3]) for r in rows])


async def scenario_a(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await reset_table(conn)
        stmt = await conn.prepare(INSERT_ONE)
        for i in range(20):
            await stmt.fetch(f"warm-{i}", 0, "warm", PAYLOAD)
        lat: list[float] = []
        t0 = time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            # autocommit: each statement is its own commit
            await stmt.fetch(f"run-{i}", 0, "step", PAYLOAD)
            lat.append(time.perf_counter() - s)
        wall = time.perf_counter() - t0
    finally:
        await conn.close()
    emit(
        SYSTEM,
        "a:single-row-commit",
        sizes={"rows": n, "rows_per_commit": 1},
        wall_s=wall,
        count=n,
        unit="commits/s",
        **latency_fields(lat),
    )


async def scenario_b(dsn: str, batches: int, batch_size: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        # (b) one multi-row INSERT per commit via unnest
        await reset_table(conn)
        await warm_up(conn, batch_size)
        lat: list[float] = []
        t0 = time.perf_counter()
        for b in range(batches):
            rows = [(f"run-{b}-{i}", 0, "step", PAYLOAD) for i in range(batch_size)]
            s = time.perf_counter()
            await insert_batch_unnest(conn, rows)
            lat.append(time.perf_counter() - s)
        wall = time.perf_counter() - t0
        total = batches * batch_size
        emit(
            SYSTEM,
            "b:multi-row-commit-unnest",
            sizes={"rows": total, "rows_per_commit": batch_size},
            wall_s=wall,
            count=total,
            unit="rows/s",
            commits_per_s=round(batches / wall, 2),
            **latency_fields(lat),
        )

        # (b') same batches via executemany inside one transaction each
        await reset_table(conn)
        await warm_up(conn, batch_size)
        lat = []
        t0 = time.perf_counter()
        for b in range(batches):
            rows = [(f"run-{b}-{i}", 0, "step", PAYLOAD) for i in range(batch_size)]
            s = time.perf_counter()
            async with conn.transaction():
                await conn.executemany(INSERT_ONE, rows)
            lat.append(time.perf_counter() - s)
        wall = time.perf_counter() - t0
        emit(
            SYSTEM,
            "b:multi-row-commit-executemany",
            sizes={"rows": total, "rows_per_commit": batch_size},
            wall_s=wall,
            count=total,
            unit="rows/s",
            commits_per_s=round(batches / wall, 2),
            **latency_fields(lat),
        )
    finally:
        await conn.close()


def scenario1_rows(runs: int, steps: int) -> list[Row]:
    """Rows in the order concurrent runs would produce them: step-major."""
    return [(f"run-{r:06d}", s, "step", PAYLOAD) for s in range(steps) for r in range(runs)]


def chunk(rows: Sequence[Row], size: int) -> list[Sequence[Row]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


async def scenario_c(dsn: str, runs: int, steps: int, batch_size: int, conns: int) -> None:
    rows = scenario1_rows(runs, steps)
    batches = chunk(rows, batch_size)
    admin = await asyncpg.connect(dsn)
    try:
        await reset_table(admin)
    finally:
        await admin.close()

    pool = await asyncpg.create_pool(dsn, min_size=conns, max_size=conns)
    try:

        async def warm(conn: asyncpg.Connection, k: int) -> None:
            rows = [(f"warm-{k}-{i}", 0, "warm", PAYLOAD) for i in range(batch_size)]
            await insert_batch_unnest(conn, rows)

        conns_held = [await pool.acquire() for _ in range(conns)]
        for k, cn in enumerate(conns_held):
            await warm(cn, k)
        for cn in conns_held:
            await pool.release(cn)

        queue: asyncio.Queue[Sequence[Row]] = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)
        lat: list[float] = []

        async def writer() -> None:
            async with pool.acquire() as conn:
                while True:
                    try:
                        batch = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    s = time.perf_counter()
                    await insert_batch_unnest(conn, batch)
                    lat.append(time.perf_counter() - s)

        t0 = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(conns)))
        wall = time.perf_counter() - t0
    finally:
        await pool.close()
    name = "c:scenario1-shape" + ("" if conns == 1 else f"-{conns}conn")
    emit(
        SYSTEM,
        name,
        sizes={
            "runs": runs,
            "steps_per_run": steps,
            "rows": len(rows),
            "rows_per_commit": batch_size,
            "connections": conns,
        },
        wall_s=wall,
        count=len(rows),
        unit="rows/s",
        commits_per_s=round(len(batches) / wall, 2),
        **latency_fields(lat),
    )


async def main_async(args: argparse.Namespace) -> None:
    dsn = await recreate_database_async(args.dsn, DB_NAME)
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    smoke: bool = args.smoke
    for s in wanted:
        log(f"[ceiling] scenario {s}")
        if s == "a":
            await scenario_a(dsn, 300 if smoke else 3000)
        elif s == "b":
            await scenario_b(dsn, batches=10 if smoke else 200, batch_size=100)
        elif s == "c":
            runs = 50 if smoke else 1000
            await scenario_c(dsn, runs=runs, steps=10, batch_size=100, conns=1)
            await scenario_c(dsn, runs=runs, steps=10, batch_size=100, conns=4)
        else:
            raise SystemExit(f"unknown scenario {s!r}; valid: a,b,c")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--scenarios", default="a,b,c", help="comma list of a,b,c")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
