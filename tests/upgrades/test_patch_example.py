"""examples/patching.py, checked by replay through worker restarts: every phase of the
patch lifecycle replays the runs the previous phase left in flight; skipping phase 2
breaks them (NonDeterminismError), which is why the phases exist."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from durable import Runtime
from durable.store import MEMORY_URL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    """Import examples/NAME.py (the folder is not a package), as tests/test_examples.py."""
    spec = importlib.util.spec_from_file_location(
        f"durable_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


EXPECTED = {
    "A (recorded before the patch)": ["charge A", "notify A"],
    "B (recorded in phase 1)": ["validate B", "charge B", "notify B"],
    "C (phase 3)": ["validate C", "charge C", "notify C"],
    # Every step body ran once: replays after each restart re-ran nothing.
    "step bodies run": [
        "charge A",
        "notify A",
        "validate B",
        "charge B",
        "notify B",
        "validate C",
        "charge C",
        "notify C",
    ],
}


@pytest.mark.parametrize("where", ["postgres", "memory"])
async def test_patch_lifecycle_example(dsn: str, schema: str, where: str) -> None:
    example = load("patching")
    target = dsn if where == "postgres" else MEMORY_URL
    assert await example.main(dsn=target, schema=schema) == EXPECTED


async def test_skipping_the_deprecate_phase_breaks_runs_in_flight(dsn: str, schema: str) -> None:
    example = load("patching")
    async with Runtime(dsn, schema=schema, workflows=[example.ship_order_v1]) as rt:
        h = await rt.trigger(example.ship_order_v1, "B")
        while (await rt.get_run(h.run_id)).status != "suspended":
            await asyncio.sleep(0.02)
    async with Runtime(dsn, schema=schema, workflows=[example.ship_order_v3]) as rt:
        await rt.signal(h.run_id, "packed")
        with pytest.raises(Exception, match="NonDeterminismError") as caught:
            await rt.handle(h.run_id).result(timeout=10)
        info: Any = await rt.get_run(h.run_id)
    assert info.status == "failed"
    assert "patch 'validate-address'" in str(caught.value)


async def test_ci_replay_check_of_each_phase(dsn: str, schema: str) -> None:
    """The check to run before each deploy: exported histories of runs in flight,
    replayed offline against the next phase's code (`durable replay` does the same)."""
    from durable.testing import replay
    from durable.testing.replay import ReplayDivergence

    example = load("patching")
    async with Runtime(dsn, schema=schema, workflows=[example.ship_order_v0]) as rt:
        a = await rt.trigger(example.ship_order_v0, "A")
        while (await rt.get_run(a.run_id)).status != "suspended":
            await asyncio.sleep(0.02)
        before_patch = await rt.export_run(a.run_id)
    async with Runtime(dsn, schema=schema, workflows=[example.ship_order_v1]) as rt:
        b = await rt.trigger(example.ship_order_v1, "B")
        while (await rt.get_run(b.run_id)).status != "suspended":
            await asyncio.sleep(0.02)
        with_marker = await rt.export_run(b.run_id)
    # Phase 1 fits the pre-patch run; phase 2 does not (deploy it only once A ended).
    assert replay(example.ship_order_v1, before_patch).stopped_at == 1
    with pytest.raises(ReplayDivergence):
        replay(example.ship_order_v2, before_patch)
    # Phase 2 fits runs recorded in phase 1; phase 3 does not (their marker).
    assert replay(example.ship_order_v2, with_marker).stopped_at == 3
    with pytest.raises(ReplayDivergence, match="patch 'validate-address'"):
        replay(example.ship_order_v3, with_marker)
