"""Fixtures for the upgrade and run-surgery tests: runtimes on both stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from durable import Runtime, WorkflowDef

MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def make_rt(backend: Any) -> MakeRuntime:
    """A Runtime on this test's store (shared by every runtime of the test, so a new
    runtime is a restarted worker); fast polling and short leases by default."""

    def make(*workflows: WorkflowDef, **options: Any) -> Runtime:
        options.setdefault("poll_interval", "100ms")
        options.setdefault("lease", "5s")
        options.setdefault("shutdown_grace", "2s")
        return backend.runtime(*workflows, **options)

    return make


async def wait_status(rt: Runtime, run_id: str, status: str, timeout: float = 10.0) -> None:
    """Poll until the run has `status` (tests wait on state, never on fixed sleeps)."""
    import asyncio

    async with asyncio.timeout(timeout):
        while (await rt.get_run(run_id)).status != status:
            await asyncio.sleep(0.02)
