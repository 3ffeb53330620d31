"""Events written without created_at take the commit's batch time, on both stores.

Steps record their event with no timestamp (a clock read less per step); the store
stamps the time of the group commit that writes it (migration 0008 on PostgreSQL).
"""

from __future__ import annotations

import pytest

from durable.core.events import Event, EventKind
from durable.store import Store
from durable.store.base import Batch, EventRow
from durable.testing.conformance import started, t


@pytest.fixture
def store(backend_store: Store) -> Store:
    return backend_store


async def test_events_without_a_time_take_the_batch_time(store: Store) -> None:
    c = await started(store, "r1")
    stamped = Event(1, 0, EventKind.RECORDED.value, "a", b"x", t(-30))
    bare = Event(2, 1, EventKind.STEP_COMPLETED.value, "b", b"y", None)
    rows = [EventRow("r1", c.fence, stamped), EventRow("r1", c.fence, bare)]
    assert (await store.commit(Batch(now=t(5), events=rows))).rejected == set()
    alone = Event(3, 2, EventKind.STEP_COMPLETED.value, "c", b"z", None)
    await store.commit(Batch(now=t(6), events=[EventRow("r1", c.fence, alone)]))
    events = await store.load_events("r1")
    assert [(e.seq, e.created_at) for e in events] == [(1, t(-30)), (2, t(5)), (3, t(6))]
