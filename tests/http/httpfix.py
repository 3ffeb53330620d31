"""Fixtures for the HTTP tests: runtimes on the per-test schema with fast polling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from durable import Runtime, WorkflowDef

MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def make_rt(dsn: str, schema: str) -> MakeRuntime:
    def make(*workflows: WorkflowDef, **options: Any) -> Runtime:
        options.setdefault("poll_interval", "100ms")
        options.setdefault("lease", "5s")
        options.setdefault("shutdown_grace", "2s")
        return Runtime(dsn, schema=schema, workflows=list(workflows), **options)

    return make
