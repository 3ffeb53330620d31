"""The group commit finds its runs by primary key at any table size (migrations 0008, 0016).

The plans are the ones PL/pgSQL really uses inside `durable_commit`, read with
auto_explain (nested statements, sent to this connection as NOTICEs): the first calls
on a connection get custom plans that see the batch's ids, later ones a cached generic
plan that is kept while the table grows. 0004's `WHERE r.id = ANY(...)` chose a
sequential scan of `runs` for the custom plans (hundreds of ids against a table the
planner thinks small), which is the cliff this test guards against.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from durable.store.postgres import PostgresStore

BATCH = 500
FILL = 100_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def _commit(conn: asyncpg.Connection, ids: list[str]) -> None:
    """One group commit, as PostgresStore sends it: a step event and a finish for each
    of `ids` (fence 1)."""
    n = len(ids)
    await conn.fetch(
        "SELECT * FROM durable_commit_packed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
        " $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)",
        NOW,
        30.0,
        "plan_test",
        "\x1f".join(ids),
        [1] * n,
        [1] * n,
        [0] * n,
        "\x1f".join(["step_completed"] * n),
        "\x1f".join(["s"] * n),
        [b"x"] * n,
        [],
        ids,
        [1] * n,
        ["completed"] * n,
        [b"o"] * n,
        [None] * n,
        *([[]] * 8),
    )


async def _explaining(dsn: str, schema: str, notices: list[str]) -> asyncpg.Connection:
    """A connection that reports the plan of every statement, nested ones too."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute("LOAD 'auto_explain'")
    except asyncpg.PostgresError as exc:  # a server built without contrib
        await conn.close()
        pytest.skip(f"auto_explain is not available: {exc}")
    await conn.execute(
        "SET auto_explain.log_min_duration = 0;"
        " SET auto_explain.log_nested_statements = on;"
        " SET auto_explain.log_level = notice"
    )
    conn.add_log_listener(lambda _c, msg: notices.append(msg.message))
    return conn


def _lock_plans(notices: list[str]) -> list[str]:
    return [m for m in notices if "FOR NO KEY UPDATE" in m and "FROM runs r" in m]


async def test_commit_lock_is_an_index_probe_on_a_large_unanalyzed_table(
    dsn: str, schema: str
) -> None:
    store = PostgresStore(dsn, schema=schema, pool_size=1)
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()
    notices: list[str] = []
    conn = await _explaining(dsn, schema, notices)
    try:
        await conn.execute("ALTER TABLE runs SET (autovacuum_enabled = false)")

        async def add_running(prefix: str, count: int) -> None:
            await conn.execute(
                "INSERT INTO runs (id, workflow, version, status, fence, created_at,"
                " updated_at) SELECT $1 || lpad(g::text, 6, '0'), 'w', '1', 'running', 1,"
                " $2, $2 FROM generate_series(1, $3) g",
                prefix,
                NOW,
                count,
            )

        async def commits(on: asyncpg.Connection, prefix: str, calls: int) -> list[str]:
            plans = []
            for k in range(calls):
                notices.clear()
                ids = [f"{prefix}{k * BATCH + i + 1:06d}" for i in range(BATCH)]
                await _commit(on, ids)
                found = _lock_plans(notices)
                assert len(found) == 1, notices
                plans.append(found[0])
                # No statement of the commit reads the whole table.
                nested = [m for m in notices if "durable_commit_packed(" not in m]
                assert not [m for m in nested if "Seq Scan on runs" in m], nested
                # Each update finds its rows by primary key (migration 0016), never by
                # reading every running run (runs_leased) and filtering it by the batch.
                updates = [m for m in nested if "Update on runs r" in m]
                assert updates, nested
                for m in updates:
                    assert "runs_leased" not in m, m
                    assert "Index Scan using runs_pkey on runs r" in m, m
            return plans

        # Small table: five custom plans, then the generic plan this connection keeps.
        await add_running("a", 7 * BATCH)
        small = await commits(conn, "a", 7)
        # 100,000 more runs, never analyzed: the cached plan is reused as it is, and a
        # new connection's custom plans see the batch against the grown table.
        await conn.execute(
            "INSERT INTO runs (id, workflow, version, status, fence, created_at, updated_at)"
            " SELECT 'f' || g, 'w', '1', 'completed', 1, $1, $1"
            " FROM generate_series(1, $2) g",
            NOW,
            FILL,
        )
        await add_running("b", 2 * BATCH)
        large = await commits(conn, "b", 2)
        await add_running("c", 6 * BATCH)
        fresh = await _explaining(dsn, schema, notices)
        try:
            large += await commits(fresh, "c", 6)
        finally:
            await fresh.close()
        reltuples = await conn.fetchval(
            "SELECT reltuples FROM pg_class WHERE oid = 'runs'::regclass"
        )
        assert reltuples < 0  # never analyzed
        count = await conn.fetchval("SELECT count(*) FROM runs")
        assert count == FILL + 15 * BATCH
        done = await conn.fetchval("SELECT count(*) FROM runs WHERE status = 'completed'")
        assert done == FILL + 15 * BATCH  # the commits did what they say
    finally:
        await conn.close()
    for plan in small + large:
        assert "Index Scan using runs_pkey on runs r" in plan, plan
        assert "Seq Scan on runs" not in plan, plan
        assert "Bitmap" not in plan, plan
