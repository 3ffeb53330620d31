"""Fixtures for issue 14's tests: runtimes on both stores (see tests/integration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from durable import Runtime, WorkflowDef

MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def make_rt(backend: Any) -> MakeRuntime:
    """A Runtime on this test's store; fast polling and short leases by default."""

    def make(*workflows: WorkflowDef, **options: Any) -> Runtime:
        options.setdefault("poll_interval", "100ms")
        options.setdefault("lease", "5s")
        options.setdefault("shutdown_grace", "2s")
        return backend.runtime(*workflows, **options)

    return make
