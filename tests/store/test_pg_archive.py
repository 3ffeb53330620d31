"""The run archive (migration 0017, durable/store/pg_archive.py) on real PostgreSQL.

Runs are made by a real worker with ids of past days (as if created then), then aged
in SQL (created_at / finished_at moved back: the only way to have a run finish days
ago inside a test). Covers: which runs move and which stay; every reader and outside
operation on an archived run; a new run with an archived id is not created twice; a
retry moves a run back; retention drops a day of archived runs with its partitions and
purges row by row a day that must stay.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from durable import Context, Runtime, workflow
from durable.errors import RunClosed
from durable.store import pg_archive, pg_partitions
from durable.store.postgres import PostgresStore

TODAY = datetime.now(UTC).date()
OLD = TODAY - timedelta(days=5)  # the day the archivable runs were "created"
PINNED = TODAY - timedelta(days=4)  # a day with a run that is still open


def old_id(day: date) -> str:
    ms = int(datetime(day.year, day.month, day.day, 3, tzinfo=UTC).timestamp() * 1000)
    return f"{ms + secrets.randbelow(1000):012x}{secrets.randbits(80):020x}"


@workflow
async def two_steps(ctx: Context, x: int) -> int:
    a = await ctx.step("a", lambda: x + 1)
    return int(await ctx.step("b", lambda: a * 2))


def _broken() -> int:
    raise TypeError("a bug")  # not retried: the run fails at once


@workflow
async def fails(ctx: Context, x: int) -> int:
    if x > 0:
        return int(await ctx.step("boom", _broken))
    return x


@workflow
async def waits(ctx: Context, _: object) -> object:
    return await ctx.wait_for_signal("go")


@workflow
async def parent_waits(ctx: Context, child_id: str) -> object:
    await ctx.child(two_steps, 1, run_id=child_id)
    return await ctx.wait_for_signal("go")


WORKFLOWS = [two_steps, fails, waits, parent_waits]


@pytest.fixture
async def store(dsn: str, schema: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(dsn, schema=schema, pool_size=4)
    await s.open()
    await s.migrate()
    async with s.pool.acquire() as conn:
        await pg_partitions.ensure_partitions(conn, schema, OLD, ahead=(TODAY - OLD).days)
    yield s
    await s.close()


async def _age(db: asyncpg.Connection, ids: list[str], days: int = 5) -> None:
    """Pretend the runs were created (and finished, if they did) `days` days ago.
    (Computed here, not in SQL: Citus refuses `column - interval` in an UPDATE.)"""
    back = timedelta(days=days)
    for row in await db.fetch(
        "SELECT id, created_at, finished_at FROM runs WHERE id = ANY($1::text[])", ids
    ):
        finished = row["finished_at"]
        await db.execute(
            "UPDATE runs SET created_at = $2, finished_at = $3 WHERE id = $1",
            row["id"],
            row["created_at"] - back,
            None if finished is None else finished - back,
        )


async def _where(db: asyncpg.Connection, run_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT 'runs' AS t FROM runs WHERE id = $1"
        " UNION ALL SELECT 'archive' FROM runs_archive WHERE id = $1",
        run_id,
    )
    return [r["t"] for r in rows]


async def test_the_archive_has_the_columns_of_runs(
    store: PostgresStore, db: asyncpg.Connection
) -> None:
    cols = (
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
    )
    runs = [tuple(r) for r in await db.fetch(cols, "runs")]
    assert runs and [tuple(r) for r in await db.fetch(cols, "runs_archive")] == runs


async def test_finished_runs_move_and_every_reader_still_finds_them(
    store: PostgresStore, dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    done, failed, keyed = old_id(OLD), old_id(OLD), old_id(OLD)
    open_, parent, child = old_id(PINNED), old_id(PINNED), old_id(PINNED)
    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS) as rt:
        h_done = await rt.trigger(two_steps, 3, run_id=done)
        h_failed = await rt.trigger(fails, 1, run_id=failed)
        h_keyed = await rt.trigger(two_steps, 4, run_id=keyed, idempotency_key="k-1")
        await rt.trigger(waits, run_id=open_)
        await rt.trigger(parent_waits, child, run_id=parent)
        assert await h_done.result(timeout=10) == 8
        assert await h_keyed.result(timeout=10) == 10
        with pytest.raises(Exception, match="a bug"):
            await h_failed.result(timeout=10)
        # The parent starts the child on its own time: wait for the child to exist.
        for _ in range(500):
            if await store.get_run(child) is not None:
                break
            await asyncio.sleep(0.01)
        assert await rt.handle(child).result(timeout=10) == 4
    await _age(db, [done, failed, keyed, open_, parent, child])

    async with store.pool.acquire() as conn:
        assert await pg_archive.archive(conn, schema) == 2
        assert await pg_archive.archive(conn, schema) == 0  # nothing left to move
    assert await _where(db, done) == ["archive"]
    assert await _where(db, failed) == ["archive"]
    # Stay: an idempotency key, an open run, an open parent's finished child.
    for run_id in (keyed, open_, parent, child):
        assert await _where(db, run_id) == ["runs"]

    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS, worker=False) as rt:
        info = await rt.get_run(done)
        assert (info.status, info.output) == ("completed", 8)
        assert [e.kind for e in info.history][-1] == "run_completed"
        assert await rt.handle(done).result(timeout=5) == 8
        listed = [r.run_id for r in await rt.list_runs(limit=100)]
        assert done in listed and failed in listed and open_ in listed
        assert done in [r.run_id for r in await rt.list_runs(status="completed")]
        assert done not in [r.run_id for r in await rt.list_runs(status="suspended")]
        # Outside operations see a finished run, not a missing one.
        with pytest.raises(RunClosed):
            await rt.signal(done, "go", 1)
        with pytest.raises(RunClosed):
            await rt.emit_event(done, "note", {"a": 1})
        with pytest.raises(RunClosed):
            await rt.cancel(done)
        updated = await rt.update_run(done, tags={"team": "a"})
        assert updated.tags == {"team": "a"}
        assert await _where(db, done) == ["archive"]
        assert [r.run_id for r in await rt.list_runs(tags={"team": "a"})] == [done]
        # The same id again is the archived run, not a second one.
        again = await rt.trigger(two_steps, 99, run_id=done)
        assert again.run_id == done
        assert await _where(db, done) == ["archive"]
        assert (await rt.get_run(done)).output == 8
        # A retry moves the failed run back into `runs` first.
        await rt.retry(failed)
        assert await _where(db, failed) == ["runs"]
        assert (await rt.get_run(failed)).status in ("pending", "suspended")


async def test_list_pages_merge_both_tables_in_order(
    store: PostgresStore, dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    ids = [old_id(OLD) for _ in range(6)]
    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS) as rt:
        for i, run_id in enumerate(ids):
            await rt.handle((await rt.trigger(fails, 0, run_id=run_id)).run_id).result(timeout=10)
            await _age(db, [run_id], days=5 + i)  # older and older
        await rt.trigger(fails, 0, run_id=old_id(OLD), idempotency_key="stays")
    async with store.pool.acquire() as conn:
        assert await pg_archive.archive(conn, schema) == 6
    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS, worker=False) as rt:
        expected = [r.run_id for r in await rt.list_runs(limit=100)]
        assert len(expected) == 7
        pages: list[str] = []
        cursor = None
        while True:
            page = await store.list_runs(workflow=None, status=None, limit=2, before=cursor)
            pages += [r.run_id for r in page]
            if len(page) < 2:
                break
            cursor = (page[-1].created_at, page[-1].run_id)
        assert pages == expected
        created = [(await rt.get_run(i)).created_at for i in expected]
        assert created == sorted(created, reverse=True)


async def test_retention_drops_archived_days_whole_and_purges_a_pinned_day_by_rows(
    store: PostgresStore, dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    gone, kept_old, kept_open = old_id(OLD), old_id(PINNED), old_id(PINNED)
    late = old_id(PINNED)
    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS) as rt:
        for run_id in (gone, kept_old, late):
            await rt.handle((await rt.trigger(two_steps, 1, run_id=run_id)).run_id).result(
                timeout=10
            )
        await rt.trigger(waits, run_id=kept_open)
    await _age(db, [gone, kept_old, kept_open, late])
    # `late` was created that day but finished only an hour ago.
    await db.execute(
        "UPDATE runs SET finished_at = now() - interval '1 hour' WHERE id = $1", late
    )
    async with store.pool.acquire() as conn:
        assert await pg_archive.archive(conn, schema) == 3
    parts = [p.name for p in await pg_partitions.list_partitions(db, "runs_archive")]
    assert pg_partitions.partition_name("runs_archive", OLD) in parts
    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS, worker=False) as rt:
        assert await rt.purge_runs("2d") == 2  # `gone` with its day, `kept_old` by rows
    for table in pg_partitions.PARTITIONED:
        left = [p.name for p in await pg_partitions.list_partitions(db, table)]
        assert pg_partitions.partition_name(table, OLD) not in left
        assert pg_partitions.partition_name(table, PINNED) in left
    assert await _where(db, gone) == []
    assert await _where(db, kept_old) == []
    assert await db.fetchval("SELECT count(*) FROM events WHERE run_id = $1", kept_old) == 0
    assert await _where(db, late) == ["archive"]
    assert await db.fetchval("SELECT count(*) FROM events WHERE run_id = $1", late) > 0
    assert await _where(db, kept_open) == ["runs"]


async def test_a_worker_archives_from_its_heartbeat(
    store: PostgresStore, dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    run_id = old_id(OLD)
    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS) as rt:
        await rt.handle((await rt.trigger(two_steps, 1, run_id=run_id)).run_id).result(timeout=10)
    await _age(db, [run_id])
    # A worker starting up archives at its first heartbeat (then hourly).
    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS):
        for _ in range(500):
            if await _where(db, run_id) == ["archive"]:
                break
            await asyncio.sleep(0.01)
    assert await _where(db, run_id) == ["archive"]


async def test_a_long_archive_pass_does_not_hold_up_lease_renewals(
    store: PostgresStore, dsn: str, schema: str, db: asyncpg.Connection
) -> None:
    calls: list[int] = []

    @workflow(name="long_beside_archive")
    async def long_one(ctx: Context, _: object) -> str:
        async def long_step() -> str:
            calls.append(1)
            await asyncio.sleep(2.2)
            return "done"

        return await ctx.step("long", long_step)

    # Holding the archive off keeps every worker's archive pass waiting (as a long pass
    # over a backlog would) for the whole test.
    async with db.transaction():
        await pg_archive.hold_off(db, schema)
        # B would take the run over the moment A's 600 ms lease lapsed.
        async with (
            Runtime(dsn, schema=schema, workflows=[long_one], lease="600ms") as a,
            Runtime(dsn, schema=schema, workflows=[long_one], lease="600ms") as b,
        ):
            h = await a.trigger(long_one, None)
            assert await b.handle(h.run_id).result(timeout=20) == "done"
            waiting = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock(%'"
            )
            assert waiting >= 1, "no archive pass was waiting: the test proves nothing"
    assert calls == [1], f"the long step ran {len(calls)} times"
    assert await db.fetchval("SELECT fence FROM runs WHERE id = $1", h.run_id) == 1
