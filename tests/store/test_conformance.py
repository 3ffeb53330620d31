"""The store conformance suite (durable.testing.conformance) on MemoryStore and PostgresStore."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from durable.store import Store, store_for
from durable.store.memory import MemoryStore
from durable.store.postgres import PostgresStore
from durable.testing.conformance import T0, StoreConformance, claim_one, ev, new_run


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        store = store_for("memory://")
        assert isinstance(store, MemoryStore)
        await store.open()
        await store.migrate()
        yield store
        await store.close()


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    async def store(self, dsn: str, schema: str) -> AsyncIterator[Store]:
        store = store_for(dsn, schema=schema, pool_size=2)
        assert isinstance(store, PostgresStore)
        await store.open()
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()


async def test_memory_notices_are_synchronous_and_exact() -> None:
    """The memory store's notices arrive during the call, once per distinct payload."""
    store = MemoryStore()
    seen: list[str] = []
    listener = await store.listen(seen.append)
    await store.create_run(new_run("p"), T0)
    await store.create_run(new_run("p"), T0)  # nothing new: no notification
    assert seen == ["w"]
    seen.clear()
    p = await claim_one(store, "p")
    await store.start_child("p", p.fence, ev(1), new_run("kid"), T0)
    await store.signal("p", "go", b"", T0)
    assert seen == ["w", "w"]
    seen.clear()
    assert await store.cancel("p", T0) == ["p", "kid"]
    assert seen == ["x:p", "d:p", "x:kid", "d:kid"]
    await listener.close()
    assert not listener.active
    await store.create_run(new_run("q"), T0)
    assert seen == ["x:p", "d:p", "x:kid", "d:kid"]


async def test_store_for_rejects_a_bad_schema_before_connecting() -> None:
    from durable.errors import ValidationError

    with pytest.raises(ValidationError, match="schema"):
        store_for("postgresql://nobody@127.0.0.1:1/x", schema="bad-name")
