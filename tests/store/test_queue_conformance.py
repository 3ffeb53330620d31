"""The flow-control conformance suite (durable.testing.conformance_queues) on both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from durable.store import Store, store_for
from durable.testing.conformance_queues import QueueConformance


class TestMemoryStoreQueues(QueueConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        store = store_for("memory://")
        await store.open()
        await store.migrate()
        yield store
        await store.close()


class TestPostgresStoreQueues(QueueConformance):
    @pytest.fixture
    async def store(self, dsn: str, schema: str) -> AsyncIterator[Store]:
        store = store_for(dsn, schema=schema, pool_size=2)
        await store.open()
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()
