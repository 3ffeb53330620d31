"""Partitioned history (migration 0009, durable/store/pg_partitions.py) on real PostgreSQL.

Covers: a new database gets day partitions ahead; a database at the pre-0009 schema
with data is converted in place with its history intact; retention drops a partition
whose every run ended before the cutoff and keeps (and purges row by row) one that a
live run pins; concurrent maintenance creates each partition once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import asyncpg
import pytest

from durable import Context, Runtime, codec, workflow
from durable.store import pg_partitions
from durable.store.postgres import PostgresStore
from durable.store.sql_split import split_sql

TODAY = datetime.now(UTC).date()


def old_id(day: date, n: int = 0) -> str:
    """A run id as durable/ids.py makes them, for a run created on `day` (UTC)."""
    ms = int(datetime(day.year, day.month, day.day, 1, tzinfo=UTC).timestamp() * 1000) + n
    return f"{ms:012x}{secrets.randbits(80):020x}"


@workflow
async def two_steps(ctx: Context, x: int) -> int:
    a = await ctx.step("a", lambda: x + 1)
    return int(await ctx.step("b", lambda: a * 2))


@pytest.fixture
async def store(dsn: str, schema: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(dsn, schema=schema, pool_size=4)
    await s.open()
    yield s
    await s.close()


async def _parts(db: asyncpg.Connection, table: str) -> list[str]:
    return [p.name for p in await pg_partitions.list_partitions(db, table)]


async def test_new_database_has_day_partitions_ahead(
    store: PostgresStore, db: asyncpg.Connection
) -> None:
    await store.migrate()
    for table in pg_partitions.PARTITIONED:
        assert (
            await db.fetchval(
                "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", table
            )
            == "p"
        )
        days = [TODAY + timedelta(days=i) for i in range(pg_partitions.AHEAD_DAYS + 1)]
        assert await _parts(db, table) == [pg_partitions.partition_name(table, d) for d in days]
        assert await db.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{table}_default")
    await store.migrate()  # idempotent: nothing new, nothing fails
    assert len(await _parts(db, "events")) == pg_partitions.AHEAD_DAYS + 1


async def test_a_run_writes_into_its_day_partition(
    store: PostgresStore, dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    async with Runtime(dsn, schema=schema, workflows=[two_steps]) as rt:
        h = await rt.trigger(two_steps, 3)
        assert await h.result(timeout=10) == 8
        assert [e.kind for e in (await rt.get_run(h.run_id)).history][-1] == "run_completed"
    where = await db.fetch("SELECT DISTINCT tableoid::regclass::text AS t FROM events")
    assert [r["t"] for r in where] == [pg_partitions.partition_name("events", TODAY)]


async def _migrate_to_0008(db: asyncpg.Connection) -> None:
    """The schema as every migration before 0009 left it (what an existing database has)."""
    await db.execute(
        "CREATE TABLE migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    files = sorted(
        (
            f
            for f in resources.files("durable.store.migrations").iterdir()
            if f.name.endswith(".sql")
        ),
        key=lambda f: f.name,
    )
    for f in files:
        version = int(f.name.split("_", 1)[0])
        if version >= 9:
            continue
        for statement in split_sql(f.read_text()):
            await db.execute(statement)
        await db.execute("INSERT INTO migrations (version, name) VALUES ($1, $2)", version, f.name)


async def _seed(db: asyncpg.Connection, run_ids: list[str]) -> None:
    now = datetime.now(UTC)
    for i, run_id in enumerate(run_ids):
        await db.execute(
            "INSERT INTO runs (id, workflow, version, status, created_at, updated_at, finished_at)"
            " VALUES ($1, 'wf', '1', 'completed', $2, $2, $2)",
            run_id,
            now - timedelta(days=40),
        )
        await db.executemany(
            "INSERT INTO events (run_id, seq, pos, kind, name, payload, created_at)"
            " VALUES ($1, $2, $2, 'step_completed', 's', $3, $4)",
            [(run_id, seq, codec.encode([i, seq]), now) for seq in range(1, 6)],
        )
        await db.execute(
            "INSERT INTO run_events (run_id, type, payload, created_at) VALUES ($1, 'note', NULL, $2)",
            run_id,
            now,
        )


async def test_existing_database_is_converted_in_place(
    store: PostgresStore, dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    await db.execute(f'CREATE SCHEMA "{schema}"')
    await _migrate_to_0008(db)
    assert (
        await db.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'events'::regclass")
        == "r"
    )
    # Old runs, today's run, and ids given by callers (one sorting above every day).
    ids = [old_id(TODAY - timedelta(days=40)), old_id(TODAY), "order-42", "0-early"]
    await _seed(db, ids)
    before = await db.fetch("SELECT * FROM events ORDER BY run_id, seq")
    before_custom = await db.fetch("SELECT * FROM run_events ORDER BY run_id, id")
    last_id = await db.fetchval("SELECT max(id) FROM run_events")

    await store.migrate()

    assert (
        await db.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'events'::regclass")
        == "p"
    )
    assert await db.fetch("SELECT * FROM events ORDER BY run_id, seq") == before
    assert await db.fetch("SELECT * FROM run_events ORDER BY run_id, id") == before_custom
    placed = {
        r["run_id"]: r["t"]
        for r in await db.fetch("SELECT DISTINCT run_id, tableoid::regclass::text AS t FROM events")
    }
    assert placed == {
        ids[0]: "events_legacy",
        ids[1]: "events_legacy",  # today is below the legacy bound (start of tomorrow)
        "0-early": "events_legacy",
        "order-42": "events_default",  # moved out: above every day's range
    }
    legacy = (await pg_partitions.list_partitions(db, "events"))[0]
    assert (legacy.name, legacy.low) == ("events_legacy", None)
    assert legacy.high == pg_partitions.id_bound(TODAY + timedelta(days=1))
    # Day partitions start where the legacy one ends.
    assert (await _parts(db, "events"))[1] == pg_partitions.partition_name(
        "events", TODAY + timedelta(days=1)
    )
    # The primary key still refuses a second (run_id, seq), in the legacy partition too.
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "INSERT INTO events (run_id, seq, pos, kind, name, created_at)"
            " VALUES ($1, 1, 1, 'x', 'x', now())",
            ids[0],
        )
    # The custom events' sequence survived the swap and keeps counting.
    new_id = await db.fetchval(
        "INSERT INTO run_events (run_id, type, created_at) VALUES ('x', 't', now()) RETURNING id"
    )
    assert new_id > last_id
    # And the runtime works on it: runs, history, custom events.
    async with Runtime(dsn, schema=schema, workflows=[two_steps]) as rt:
        h = await rt.trigger(two_steps, 1)
        assert await h.result(timeout=10) == 4
        assert len((await rt.get_run(ids[0])).history) == 5
        assert [e.name for e in await rt.get_events(ids[0])] == ["note"]
        # Retention: the seeded runs ended 40 days ago, but today's run (this one) is in
        # the legacy range too, so they go row by row and the partition stays.
        assert await rt.purge_runs("30d") == 4
        assert await db.fetchval("SELECT to_regclass('events_legacy') IS NOT NULL")
    # Once every run below its bound has ended before the cutoff, it is dropped whole.
    # Not while today's runs can still be created into it...
    assert await store.purge_partitions(datetime.now(UTC) + timedelta(days=1)) == 0
    # ...but from tomorrow on (pretended here), once they have all ended.
    async with store.pool.acquire() as conn:
        later = datetime.now(UTC) + timedelta(days=1)
        dropped = await pg_partitions.drop_expired(
            conn, schema, later, today=TODAY + timedelta(days=1)
        )
    assert dropped == 1
    assert not await db.fetchval("SELECT to_regclass('events_legacy') IS NOT NULL")
    assert not await db.fetchval("SELECT to_regclass('run_events_legacy') IS NOT NULL")
    assert await db.fetchval("SELECT count(*) FROM runs") == 0
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def _finished_run(db: asyncpg.Connection, run_id: str, ended: datetime, **kw: Any) -> None:
    status = kw.get("status", "completed")
    await db.execute(
        "INSERT INTO runs (id, workflow, version, status, created_at, updated_at, finished_at,"
        " parent_run_id) VALUES ($1, 'wf', '1', $2, $3, $3, $4, $5)",
        run_id,
        status,
        ended - timedelta(hours=1),
        None if status not in ("completed", "failed", "cancelled") else ended,
        kw.get("parent"),
    )
    await db.execute(
        "INSERT INTO events (run_id, seq, pos, kind, name, created_at)"
        " VALUES ($1, 1, 0, 'step_completed', 's', $2)",
        run_id,
        ended,
    )


async def test_purge_drops_expired_partitions_and_keeps_pinned_ones(
    store: PostgresStore, dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    await store.migrate()
    old, pinned, recent = (TODAY - timedelta(days=d) for d in (20, 19, 2))
    async with store.pool.acquire() as conn:
        for day in (old, pinned, recent):
            await pg_partitions.ensure_partitions(conn, schema, day, ahead=0)
    long_ago = datetime.now(UTC) - timedelta(days=15)
    old_runs = [old_id(old, i) for i in range(3)]
    for run_id in old_runs:
        await _finished_run(db, run_id, long_ago)
    done_pinned = old_id(pinned, 1)
    await _finished_run(db, done_pinned, long_ago)
    sleeper = old_id(pinned, 2)  # created 19 days ago, still waiting
    await _finished_run(db, sleeper, long_ago, status="suspended")
    fresh = old_id(recent)
    await _finished_run(db, fresh, datetime.now(UTC) - timedelta(days=1))
    await db.execute(
        "INSERT INTO inbox (run_id, kind, name, created_at) VALUES ($1, 'signal', 'x', now())",
        old_runs[0],
    )

    async with Runtime(dsn, schema=schema, worker=False) as rt:
        deleted = await rt.purge_runs("10d")

    assert deleted == 4  # 3 with their partition, 1 row by row beside the sleeper
    assert not await db.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", pg_partitions.partition_name("events", old)
    )
    assert not await db.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", pg_partitions.partition_name("run_events", old)
    )
    assert await db.fetchval("SELECT count(*) FROM inbox") == 0
    left = {r["id"] for r in await db.fetch("SELECT id FROM runs")}
    assert left == {sleeper, fresh}
    assert await db.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", pg_partitions.partition_name("events", pinned)
    )
    assert await db.fetchval("SELECT count(*) FROM events WHERE run_id = $1", sleeper) == 1
    assert await db.fetchval("SELECT count(*) FROM events WHERE run_id = $1", done_pinned) == 0


async def test_a_child_of_an_unfinished_parent_keeps_its_partition(
    store: PostgresStore, schema: str, db: asyncpg.Connection
) -> None:
    await store.migrate()
    day = TODAY - timedelta(days=20)
    async with store.pool.acquire() as conn:
        await pg_partitions.ensure_partitions(conn, schema, day, ahead=0)
    parent = old_id(TODAY)
    await _finished_run(db, parent, datetime.now(UTC), status="suspended")
    child = old_id(day)
    await _finished_run(db, child, datetime.now(UTC) - timedelta(days=15), parent=parent)
    assert await store.purge_partitions(datetime.now(UTC) - timedelta(days=10)) == 0
    assert await db.fetchval("SELECT count(*) FROM runs WHERE id = $1", child) == 1
    assert await db.fetchval("SELECT count(*) FROM events WHERE run_id = $1", child) == 1


async def test_concurrent_maintenance_creates_each_partition_once(
    dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    stores = [PostgresStore(dsn, schema=schema, pool_size=2) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        await stores[0].migrate()
        start = TODAY + timedelta(days=30)

        async def ensure(s: PostgresStore) -> list[str]:
            async with s.pool.acquire() as conn:
                return await pg_partitions.ensure_partitions(conn, schema, start, ahead=3)

        made = await asyncio.gather(*(ensure(s) for s in stores))
        flat = [name for names in made for name in names]
        assert sorted(flat) == sorted(
            pg_partitions.partition_name(t, start + timedelta(days=i))
            for t in pg_partitions.PARTITIONED
            for i in range(4)
        )
        await asyncio.gather(*(s.maintain() for s in stores))  # hourly, idempotent
    finally:
        for s in stores:
            await s.close()
