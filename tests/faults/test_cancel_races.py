"""`cancel()` against children finishing: no deadlock escapes, every run ends consistently.

Issue 16, item 6: cancel locked the parent and then its children, while a child's
finishing group commit locks the child and then its parent (`durable_wake_parents`).
PostgreSQL broke the cycle by aborting cancel: `DeadlockDetectedError` in 3 of 400
races. Cancel now locks children before parents (the commit's order) and retries the
deadlocks no single order can avoid.

The first two tests play the commit's side by hand on a raw connection, so the lock
order is exact and the outcome deterministic; the race test runs real workers
(short form here, 400 races under `faults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from durable import Context, RunClosed, workflow
from durable.core.events import EventKind
from durable.store.postgres import PostgresStore
from durable.testing.conformance_helpers import claim_one, ev, new_run, started, status, t

from .conftest import MakeRuntime
from .harness import check_histories, report, wait_for


@pytest.fixture
def store(pg_store: PostgresStore) -> PostgresStore:
    return pg_store


@pytest.fixture
async def other(dsn: str, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A second session on the schema: it plays the group commit's transaction."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        yield conn
    finally:
        await conn.close()


async def parent_and_child(store: PostgresStore, parent: str, child: str) -> None:
    p = await started(store, parent)
    event = ev(1, EventKind.CHILD_STARTED, "kid")
    await store.start_child(parent, p.fence, event, new_run(child, data=b"k"), t(1))
    await claim_one(store, child, 2)


async def blocked_by(conn: asyncpg.Connection, pid: int) -> bool:
    """True once some session waits for a lock `pid` holds (the cancel, here)."""
    n = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid
    )
    return bool(n)


async def watch_blocking(dsn: str, pid: int) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        await wait_for(lambda: blocked_by(admin, pid), timeout=10, what="cancel waiting")
    finally:
        await admin.close()


async def test_cancel_locks_a_child_before_its_parent(
    store: PostgresStore, other: asyncpg.Connection, dsn: str
) -> None:
    """A child's finishing commit holds the child and then wants the parent."""
    await parent_and_child(store, "p", "kid")
    async with other.transaction():
        # The commit finishing `kid`: its row first (durable_commit_packed's lock)...
        await other.execute("SELECT 1 FROM runs WHERE id = $1 FOR NO KEY UPDATE", "kid")
        cancel = asyncio.create_task(store.cancel("p", t(3)))
        await watch_blocking(dsn, other.get_server_pid())
        # ...then its parent (durable_wake_parents). Cancel holding `p` here while it
        # waits for `kid` is the deadlock (before: cancel was its victim).
        await other.execute("UPDATE runs SET wakeups = wakeups + 1 WHERE id = $1", "p")
        await other.execute(
            "UPDATE runs SET status = 'completed', output = $2, finished_at = now(),"
            " lease_owner = NULL, lease_until = NULL WHERE id = $1",
            "kid",
            b"out",
        )
    assert await cancel == ["p"]
    assert await status(store, "p") == "cancelled"
    assert await status(store, "kid") == "completed"


async def test_cancel_retries_when_it_is_the_deadlock_victim(
    store: PostgresStore, other: asyncpg.Connection, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit holding a parent and its child in one batch locks them in id order
    ("a" before "b"): no order of cancel's avoids that cycle, so cancel retries it."""
    from durable.store import pg_cancel

    tries: list[int] = []
    original = pg_cancel.PgCancel._cancel_tree

    async def counted(self: Any, *args: Any) -> list[str]:
        tries.append(1)
        return await original(self, *args)

    monkeypatch.setattr(pg_cancel.PgCancel, "_cancel_tree", counted)
    await parent_and_child(store, "a", "b")
    async with other.transaction():
        await other.execute("SELECT 1 FROM runs WHERE id = $1 FOR NO KEY UPDATE", "a")
        cancel = asyncio.create_task(store.cancel("a", t(3)))
        await watch_blocking(dsn, other.get_server_pid())  # cancel holds b, waits for a
        await other.execute("SELECT 1 FROM runs WHERE id = $1 FOR NO KEY UPDATE", "b")
        await other.execute(
            "UPDATE runs SET status = 'completed', output = $2, finished_at = now(),"
            " lease_owner = NULL, lease_until = NULL WHERE id = $1",
            "b",
            b"out",
        )
    assert await cancel == ["a"]
    assert len(tries) == 2, "cancel was not retried after the deadlock"
    assert await status(store, "b") == "completed"


# -- real races --------------------------------------------------------------------------


@workflow(name="race_kid")
async def race_kid(ctx: Context, i: int) -> int:
    await ctx.wait_for_signal("go")
    return int(await ctx.step("work", lambda: i))


@workflow(name="race_parent")
async def race_parent(ctx: Context, n: int) -> list[int]:
    kids = [await ctx.start_child(race_kid, i) for i in range(n)]
    results = await asyncio.gather(*(k.result() for k in kids))
    await ctx.wait_for_signal("never")  # the parent never ends by itself: cancel must win
    return list(results)


async def cancel_races(
    make_rt: MakeRuntime, db: Any, rng: random.Random, races: int, kids: int, rounds: int
) -> None:
    errors: list[str] = []
    cancelled = 0
    async with make_rt(race_parent, race_kid, lease="10s", pool_size=20) as rt:

        async def race(parent_id: str, children: list[str]) -> None:
            """Signal every child (each then finishes) while the parent is cancelled."""
            nonlocal cancelled

            async def go(kid: str) -> None:
                with contextlib.suppress(RunClosed):  # the cancel may come first
                    await rt.signal(kid, "go")

            async def cancel() -> None:
                nonlocal cancelled
                await asyncio.sleep(rng.random() * 1.0)
                try:
                    await rt.cancel(parent_id)
                    cancelled += 1
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")

            await asyncio.gather(*(go(k) for k in children), cancel())

        async def children_waiting(ids: list[str]) -> bool:
            n = await db.fetchval(
                "SELECT count(*) FROM runs WHERE parent_run_id = ANY($1::text[])"
                " AND status = 'suspended'",
                ids,
            )
            return bool(n == len(ids) * kids)

        for _ in range(rounds):
            ids = [(await rt.trigger(race_parent, kids)).run_id for _ in range(races)]
            await wait_for(lambda: children_waiting(ids), timeout=60, what="children waiting")  # noqa: B023
            children_of: dict[str, list[str]] = {}
            for row in await db.fetch(
                "SELECT id, parent_run_id FROM runs WHERE parent_run_id = ANY($1::text[])", ids
            ):
                children_of.setdefault(row["parent_run_id"], []).append(row["id"])
            await asyncio.gather(*(race(p, children_of[p]) for p in ids))

        # A cancel that raised leaves its parent waiting forever: report it first.
        report("cancel_races_errors", races=races * rounds, errors=errors[:5], n=len(errors))
        assert not errors, errors[:5]

        async def all_ended() -> bool:
            n = await db.fetchval(
                "SELECT count(*) FROM runs WHERE status NOT IN ('completed', 'failed', 'cancelled')"
            )
            return bool(n == 0)

        await wait_for(all_ended, timeout=60, what="every run ended")
    rows = await db.fetch(
        "SELECT workflow, status, count(*) AS n FROM runs GROUP BY workflow, status"
    )
    counts = {(r["workflow"], r["status"]): r["n"] for r in rows}
    report(
        "cancel_races",
        races=races * rounds,
        kids=kids,
        cancel_errors=len(errors),
        counts={f"{w}/{s}": n for (w, s), n in counts.items()},
    )
    assert not errors, errors[:5]
    assert cancelled == races * rounds
    assert counts.get(("race_parent", "cancelled")) == races * rounds
    assert set(counts) <= {
        ("race_parent", "cancelled"),
        ("race_kid", "completed"),
        ("race_kid", "cancelled"),
    }, counts
    await check_histories(db)


async def test_cancel_races_children_finishing(
    make_rt: MakeRuntime, db: Any, rng: random.Random
) -> None:
    await cancel_races(make_rt, db, rng, races=20, kids=3, rounds=2)


@pytest.mark.faults
async def test_cancel_races_children_finishing_long(
    make_rt: MakeRuntime, db: Any, rng: random.Random
) -> None:
    await cancel_races(make_rt, db, rng, races=50, kids=3, rounds=8)
