"""Fixtures for end-to-end tests: runtimes on the per-test schema with fast polling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from durable import Runtime, WorkflowDef

MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def make_rt(dsn: str, schema: str) -> MakeRuntime:
    """Build a Runtime on this test's schema; fast polling and short leases by default."""

    def make(*workflows: WorkflowDef, **options: Any) -> Runtime:
        options.setdefault("poll_interval", "100ms")
        options.setdefault("lease", "5s")
        options.setdefault("shutdown_grace", "2s")
        return Runtime(dsn, schema=schema, workflows=list(workflows), **options)

    return make


@pytest.fixture
async def db(dsn: str, schema: str) -> Any:
    """A raw connection on the test schema, for checking what was (not) written."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        yield conn
    finally:
        await conn.close()
