"""Fixtures for end-to-end tests: runtimes on both stores with fast polling.

`make_rt` builds runtimes through `backend` (tests/conftest.py), so every test here
runs on PostgreSQL and on the memory store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from durable import Runtime, WorkflowDef

MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def make_rt(backend: Any) -> MakeRuntime:
    """Build a Runtime on this test's store; fast polling and short leases by default."""

    def make(*workflows: WorkflowDef, **options: Any) -> Runtime:
        options.setdefault("poll_interval", "100ms")
        options.setdefault("lease", "5s")
        options.setdefault("shutdown_grace", "2s")
        return backend.runtime(*workflows, **options)

    return make
