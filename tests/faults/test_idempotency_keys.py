"""Idempotency keys across workflows (issue 16: "the same idempotency key with a
*different* workflow silently returns the other workflow's run").

Decision: a key is scoped to the workflow's name (all its versions). The same key with
another workflow starts that workflow's run; with the same workflow it returns the
existing run, whatever the input or version, as before. Run ids stay global. PostgreSQL
enforces it with a unique index on (workflow, idempotency_key) (migration 0013), the
memory store with a map keyed the same way; the behaviour is checked on both stores,
and migration 0013 on a database that still has the old global constraint.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

import asyncpg

from durable import Context, Runtime, workflow
from durable.store.postgres import PostgresStore
from durable.store.sql_split import split_sql


@workflow(name="pay")
async def pay_v1(ctx: Context, n: int) -> str:
    return f"paid {n}"


@workflow(name="pay", version="2")
async def pay_v2(ctx: Context, n: int) -> str:
    return f"paid {n} (v2)"


@workflow(name="ship")
async def ship(ctx: Context, n: int) -> str:
    return f"shipped {n}"


async def test_same_key_with_another_workflow_starts_that_workflow(backend: Any) -> None:
    async with backend.runtime(pay_v1, pay_v2, ship) as rt:
        paid = await rt.trigger(pay_v1, 1, idempotency_key="order-7")
        shipped = await rt.trigger(ship, 2, idempotency_key="order-7")
        # Before: shipped.run_id == paid.run_id, created False, and result() "paid 1".
        assert paid.created and shipped.created and shipped.run_id != paid.run_id
        assert await paid.result(timeout=30) == "paid 1"
        assert await shipped.result(timeout=30) == "shipped 2"
        info = await rt.get_run(shipped.run_id)
        assert (info.workflow, info.input) == ("ship", 2)

        # Within one workflow the key still returns its run: another input, another
        # version, by object or by name.
        for again in (
            await rt.trigger(pay_v2, 3, idempotency_key="order-7"),
            await rt.trigger("pay", 4, idempotency_key="order-7"),
        ):
            assert (again.run_id, again.created) == (paid.run_id, False)
        again_ship = await rt.trigger("ship", 5, idempotency_key="order-7")
        assert (again_ship.run_id, again_ship.created) == (shipped.run_id, False)

        # Concurrent triggers share one insert batch: the same holds there.
        a, b, a2 = await asyncio.gather(
            rt.trigger(pay_v1, 10, idempotency_key="order-8"),
            rt.trigger(ship, 20, idempotency_key="order-8"),
            rt.trigger(pay_v1, 30, idempotency_key="order-8"),
        )
        assert a.run_id != b.run_id and a2.run_id == a.run_id
        assert sorted([a.created, b.created, a2.created]) == [False, True, True]
        assert await b.result(timeout=30) == "shipped 20"
        assert await a.result(timeout=30) in ("paid 10", "paid 30")
        assert len(await rt.list_runs()) == 4


async def _migrate_to(db: asyncpg.Connection, last: int) -> None:
    """The schema as the migrations up to `last` left it (an existing database)."""
    await db.execute(
        "CREATE TABLE migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    files = sorted(
        (f for f in resources.files("durable.store.migrations").iterdir() if f.name[0].isdigit()),
        key=lambda f: f.name,
    )
    for f in files:
        version = int(f.name.split("_", 1)[0])
        if version > last:
            continue
        for statement in split_sql(f.read_text()):
            await db.execute(statement)
        await db.execute("INSERT INTO migrations (version, name) VALUES ($1, $2)", version, f.name)


async def test_migration_0013_scopes_keys_of_an_existing_database(
    dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    """A database created before 0013 (global UNIQUE (idempotency_key)) is converted in
    place: its keyed runs keep their keys, and a key becomes per workflow."""
    await db.execute(f'CREATE SCHEMA "{schema}"')
    await _migrate_to(db, 12)
    assert await db.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE conname = 'runs_idempotency_key_key'"
        " AND connamespace = $1::regnamespace",
        schema,
    )
    await db.execute(
        "INSERT INTO runs (id, workflow, version, status, idempotency_key, created_at,"
        " updated_at) VALUES ('old-1', 'pay', '1', 'pending', 'order-1', now(), now())"
    )
    async with Runtime(dsn, schema=schema, workflows=[pay_v1, ship], worker=False) as rt:
        again = await rt.trigger(pay_v1, 1, idempotency_key="order-1")
        other = await rt.trigger(ship, 1, idempotency_key="order-1")
        assert (again.run_id, again.created) == ("old-1", False)
        assert other.created and other.run_id != "old-1"
    assert not await db.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE conname = 'runs_idempotency_key_key'"
        " AND connamespace = $1::regnamespace",
        schema,
    )
    assert await db.fetchval("SELECT max(version) FROM migrations") >= 13


async def test_key_lookup_uses_the_per_workflow_index(dsn: str, schema: str) -> None:
    """The lookup after a skipped insert goes through the unique (workflow, key) index,
    not a scan of every run (checked with sequential scans disabled)."""
    from durable.store.pg_rows import EXISTING_RUNS_SQL

    store = PostgresStore(dsn, schema=schema, pool_size=2)
    await store.open()
    try:
        await store.migrate()
        async with store.pool.acquire() as conn:
            await conn.execute("SET enable_seqscan = off")
            plan = "\n".join(
                r[0]
                for r in await conn.fetch("EXPLAIN " + EXISTING_RUNS_SQL, ["r1"], ["pay"], ["k"])
            )
            await conn.execute("RESET enable_seqscan")
        assert "runs_workflow_idempotency_key" in plan, plan
    finally:
        await store.close()
