"""Fixtures of the fault-injection suite (tests/faults).

Each test family has a short form (small sizes, part of the default `make test`) and a
long form marked `faults` (`make test-faults`). Sizes live next to each test.
Uses the session database of tests/conftest.py and a fresh schema per test.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from durable import Runtime, WorkflowDef

from .harness import reachable_tmpdir

MakeRuntime = Callable[..., Runtime]


@pytest.fixture
def make_rt(dsn: str, schema: str) -> MakeRuntime:
    """Build a Runtime on this test's schema; fast polling and short leases by default."""

    def make(*workflows: WorkflowDef, **options: Any) -> Runtime:
        options.setdefault("poll_interval", "100ms")
        options.setdefault("lease", "2s")
        options.setdefault("shutdown_grace", "2s")
        return Runtime(options.pop("dsn", dsn), schema=schema, workflows=list(workflows), **options)

    return make


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A seeded RNG; the seed is printed so a failing fault schedule can be replayed
    with DURABLE_FAULTS_SEED=<seed>."""
    seed = int(os.environ.get("DURABLE_FAULTS_SEED", random.randrange(1 << 30)))
    print(f"fault schedule seed for {request.node.name}: {seed}")
    return random.Random(seed)


@pytest.fixture
def log_dir() -> Iterator[Path]:
    """Where worker subprocesses write their stderr (kept on failure for reading)."""
    path = reachable_tmpdir("durable-faults-logs-")
    yield path
    shutil.rmtree(path, ignore_errors=True)
