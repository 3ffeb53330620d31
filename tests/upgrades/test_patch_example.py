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
