"""Every Python block of docs/seeds.md's "The seed examples in Python", run as written.

Each block is a complete program: it gets `dsn` and `schema` (a fresh schema per block),
may `await` at top level (compiled as `python -m asyncio` does), and checks itself
with `assert`. A block that fails, or a section that loses its blocks, fails here.
"""

from __future__ import annotations

import ast
import re
import sys
import types
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

SEEDS_MD = Path(__file__).resolve().parents[1] / "docs" / "seeds.md"
SECTION = "## The seed examples in Python"


def _blocks() -> list[tuple[str, str]]:
    """(id, source) of each ```python block in the section, named after its lead-in."""
    text = SEEDS_MD.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    blocks: list[tuple[str, str]] = []
    seed = "seed"
    pos = 0
    for match in re.finditer(r"^```python\n(.*?)^```$", section, re.S | re.M):
        before = section[pos : match.start()]
        heading = re.findall(r"^### .*\((seed \d+)\)", before, re.M)
        seed = heading[-1].replace(" ", "") if heading else seed
        lead_in = [p for p in before.split("\n\n") if p.strip()][-1:]  # the paragraph above
        titles = re.findall(r"\*\*(.+?)\*\*", lead_in[0] if lead_in else "")
        title = titles[0] if titles else f"block{len(blocks)}"
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40]
        blocks.append((f"{seed}-{slug}", match.group(1)))
        pos = match.end()
    return blocks


BLOCKS = _blocks()


def test_the_section_has_a_block_per_seed_example() -> None:
    seeds = {block_id.split("-")[0] for block_id, _ in BLOCKS}
    assert seeds == {"seed000", "seed001", "seed002", "seed003", "seed004"}
    assert len(BLOCKS) >= 38
    assert len({block_id for block_id, _ in BLOCKS}) == len(BLOCKS)  # readable, unique ids


@pytest.fixture
async def block_schema(pg_dsn: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.mark.parametrize("source", [s for _, s in BLOCKS], ids=[i for i, _ in BLOCKS])
async def test_seed_example_runs(source: str, pg_dsn: str, block_schema: str) -> None:
    # A real module, so msgspec and dataclasses resolve the block's annotations.
    module = types.ModuleType(f"seed_example_{uuid.uuid4().hex[:8]}")
    sys.modules[module.__name__] = module
    module.__dict__.update(dsn=pg_dsn, schema=block_schema)
    try:
        code = compile(source, SEEDS_MD.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, module.__dict__)
        if result is not None:
            await result
    finally:
        del sys.modules[module.__name__]
