"""PostgresStore's claims run on a connection of their own (not a pool checkout), so the
claim loop never queues behind other pool users and keeps its plans warm (pg_own)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from durable.store.base import NewRun, QueueSpec
from durable.store.postgres import PostgresStore
from durable.testing.conformance_helpers import t


@pytest.fixture
def store(pg_store: PostgresStore) -> PostgresStore:
    return pg_store


def _new(run_id: str, queue: str | None = None) -> NewRun:
    return NewRun(run_id=run_id, workflow="wf", version="1", input=b"", created_at=t(0), queue=queue)


async def test_claims_share_one_connection_and_survive_its_loss(
    store: PostgresStore, dsn: str
) -> None:
    await store.create_runs([_new("a"), _new("q1", "q"), _new("q2", "q"), _new("b")], t(0))
    spec = QueueSpec(name="q", concurrency=1)
    claim = {"owner": "w", "keys": [("wf", "1")], "now": t(1), "lease_s": 30.0}
    assert [c.run_id for c in await store.claim(limit=1, **claim)] == ["a"]
    conn = store._claims.conn
    assert conn is not None
    # The pool's only connection stays free for everything else meanwhile.
    assert await store.pool.fetchval("SELECT 1") == 1
    assert [c.run_id for c in await store.claim_queue(queue=spec, limit=5, **claim)] == ["q1"]
    assert store._claims.conn is conn
    admin = await asyncpg.connect(dsn)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    finally:
        await admin.close()
    # Either the loss is noticed before the claim (it reconnects at once) or the claim
    # fails and the next one opens a new connection.
    later = {**claim, "now": t(1) + timedelta(seconds=1)}
    try:
        got = await store.claim(limit=5, **later)
    except Exception:
        assert store._claims.conn is None
        got = await store.claim(limit=5, **later)
    assert [c.run_id for c in got] == ["b"]
    assert store._claims.conn is not None and store._claims.conn is not conn
