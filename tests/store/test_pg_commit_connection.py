"""PostgresStore's group commit runs on a connection of its own (not a pool checkout)."""

from __future__ import annotations

import asyncpg
import pytest

from durable.core.events import Event, EventKind
from durable.store.base import Batch, EventRow
from durable.store.postgres import PostgresStore
from durable.testing.conformance import started, t


@pytest.fixture
def store(pg_store: PostgresStore) -> PostgresStore:
    return pg_store


def one_event(run_id: str, fence: int, seq: int) -> Batch:
    event = Event(seq, seq - 1, EventKind.RECORDED.value, "x", b"p", None)
    return Batch(now=t(seq), events=[EventRow(run_id, fence, event)])


async def test_commits_share_one_connection_and_survive_its_loss(
    store: PostgresStore, dsn: str
) -> None:
    c = await started(store, "r1")
    await store.commit(one_event("r1", c.fence, 1))
    conn = store._commit_conn
    assert conn is not None
    # The pool's only connection stays free for everything else meanwhile.
    assert await store.pool.fetchval("SELECT 1") == 1
    await store.commit(one_event("r1", c.fence, 2))
    assert store._commit_conn is conn
    pid = conn.get_server_pid()
    admin = await asyncpg.connect(dsn)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    # Either the loss is noticed before the commit (it reconnects at once) or the commit
    # fails (asyncpg reports it in several ways) and the next one opens a new connection.
    try:
        await store.commit(one_event("r1", c.fence, 3))
    except Exception:
        assert store._commit_conn is None
        await store.commit(one_event("r1", c.fence, 3))
    assert store._commit_conn is not None and store._commit_conn is not conn
    events = await store.load_events("r1")
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[2].created_at == t(3)  # no created_at given: the batch's time


async def test_packed_names_keep_empty_names_and_the_old_signature_still_works(
    store: PostgresStore, dsn: str, schema: str
) -> None:
    """Run ids, kinds and names travel joined by 0x1f (migration 0008): a lone empty
    name (run-level events have one) must stay one element, not vanish."""
    c = await started(store, "r1")
    run_end = Event(1, -1, EventKind.RUN_COMPLETED.value, "", None, None)
    await store.commit(Batch(now=t(1), events=[EventRow("r1", c.fence, run_end)]))
    two = [
        Event(2, 1, EventKind.RECORDED.value, "", b"a", None),
        Event(3, 2, EventKind.RECORDED.value, "n", b"b", None),
    ]
    await store.commit(Batch(now=t(2), events=[EventRow("r1", c.fence, e) for e in two]))
    assert [(e.seq, e.kind, e.name) for e in await store.load_events("r1")] == [
        (1, "run_completed", ""),
        (2, "recorded", ""),
        (3, "recorded", "n"),
    ]
    # A worker of the previous version calls durable_commit with arrays (0004's
    # signature) during a rolling deploy: same effect, rejections reported the same.
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch(
            "SELECT * FROM durable_commit($1, 30, 'ch', $2, $3, $4, $5, $6, $7, $8, $9,"
            " '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
            t(3),
            ["r1", "r1", "nope"],
            [c.fence, c.fence, 1],
            [4, 5, 1],
            [3, 4, 0],
            ["recorded"] * 3,
            ["", "m", "x"],
            [b"c", b"d", b"e"],
            [t(3)] * 3,
        )
    finally:
        await conn.close()
    assert [(r["run_id"], r["outcome"]) for r in rows] == [("nope", "rejected")]
    events = await store.load_events("r1")
    assert [(e.seq, e.name) for e in events[3:]] == [(4, ""), (5, "m")]
