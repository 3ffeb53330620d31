"""PostgresStore's group commit runs on a connection of its own (not a pool checkout)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from durable.core.events import Event, EventKind
from durable.store.base import Batch, EventRow
from durable.store.postgres import PostgresStore
from durable.testing.conformance import started, t


@pytest.fixture
async def store(dsn: str, schema: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(dsn, schema=schema, pool_size=1)
    await s.open()
    try:
        await s.migrate()
        yield s
    finally:
        await s.close()


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
