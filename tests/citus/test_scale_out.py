"""Scale-out on Citus with schema-based sharding (`make test-citus`; docs/scaling.md).

Needs a running cluster: $DURABLE_CITUS_DSN names its coordinator (tests/conftest.py
does not collect this folder otherwise). Four schemas, each placed whole on one worker
node, both workers used; in every schema, runs with steps, a timer, a signal and a child
all complete, with one Runtime per schema in this process (as `durable worker APP
--schemas a,b,c,d` runs them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from durable import Context, Runtime, workflow

CITUS_DSN = os.environ.get("DURABLE_CITUS_DSN", "")
SCHEMAS = 4
RUNS_PER_SCHEMA = 10


@workflow
async def leaf(ctx: Context, n: int) -> int:
    return int(await ctx.step("double", lambda: n * 2))


@workflow
async def order(ctx: Context, n: int) -> int:
    first = await ctx.step("first", lambda: n + 1)
    await ctx.sleep("300ms")
    bonus = await ctx.wait_for_signal("go", timeout="2m")
    child = await ctx.child(leaf, n)
    return int(first + int(bonus) + child)


@pytest.fixture
async def schemas() -> AsyncIterator[list[str]]:
    tag = uuid.uuid4().hex[:8]
    names = [f"citus_{tag}_{i}" for i in range(SCHEMAS)]
    yield names
    conn = await asyncpg.connect(CITUS_DSN)
    try:
        for name in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def placement(conn: asyncpg.Connection, names: list[str]) -> dict[str, set[int]]:
    """Schema -> the worker ports holding its tables' shards (citus_shards)."""
    rows = await conn.fetch(
        "SELECT n.nspname AS schema, s.nodeport AS port FROM citus_shards s"
        " JOIN pg_class c ON c.oid = s.table_name"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY($1::text[]) AND s.citus_table_type = 'schema'",
        names,
    )
    out: dict[str, set[int]] = {name: set() for name in names}
    for row in rows:
        out[row["schema"]].add(row["port"])
    return out


async def spread(conn: asyncpg.Connection, names: list[str]) -> dict[str, set[int]]:
    """Make sure the schemas use both workers: move one if Citus put all on one node."""
    workers = {
        r["node_port"]
        for r in await conn.fetch("SELECT node_port FROM citus_get_active_worker_nodes()")
    }
    placed = await placement(conn, names)
    used = {port for ports in placed.values() for port in ports}
    if used != workers:
        other = next(iter(workers - used))
        await conn.execute(
            "SELECT citus_schema_move($1::regnamespace, '127.0.0.1', $2,"
            " shard_transfer_mode => 'block_writes')",
            names[-1],
            other,
        )
        placed = await placement(conn, names)
    return placed


async def test_schemas_on_both_workers_complete_every_run(schemas: list[str]) -> None:
    conn = await asyncpg.connect(CITUS_DSN)
    try:
        assert await conn.fetchval("SHOW citus.enable_schema_based_sharding") == "on"
        async with contextlib.AsyncExitStack() as stack:
            rts = [
                await stack.enter_async_context(
                    Runtime(
                        CITUS_DSN,
                        schema=name,
                        workflows=[order, leaf],
                        poll_interval="200ms",
                        pool_size=4,
                    )
                )
                for name in schemas
            ]
            distributed = {
                r["name"]
                for r in await conn.fetch("SELECT schema_name::text AS name FROM citus_schemas")
            }
            assert set(schemas) <= distributed  # each a distributed schema (citus_schemas)
            placed = await spread(conn, schemas)
            print("placement (schema: worker ports):", {k: sorted(v) for k, v in placed.items()})
            # Each schema whole on one node; the four together on both workers.
            assert all(len(ports) == 1 for ports in placed.values()), placed
            workers = {
                r["node_port"]
                for r in await conn.fetch("SELECT node_port FROM citus_get_active_worker_nodes()")
            }
            assert {p for ports in placed.values() for p in ports} == workers
            assert len(workers) == 2

            handles = [[await rt.trigger(order, n) for n in range(RUNS_PER_SCHEMA)] for rt in rts]
            await asyncio.sleep(0.5)
            for rt, hs in zip(rts, handles, strict=True):
                for n, h in enumerate(hs):
                    await rt.signal(h.run_id, "go", 100 * n)
            for hs in handles:
                results = await asyncio.gather(*(h.result(timeout=120) for h in hs))
                assert results == [(n + 1) + 100 * n + 2 * n for n in range(RUNS_PER_SCHEMA)]
            for rt in rts:
                done = await rt.list_runs(status="completed", limit=1000)
                assert len(done) == 2 * RUNS_PER_SCHEMA  # every parent and its child
                assert not await rt.list_runs(status="failed")
                history = (await rt.get_run(done[0].run_id)).history
                assert history[-1].kind == "run_completed"
    finally:
        await conn.close()
