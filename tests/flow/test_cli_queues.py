"""`durable queues list` on real PostgreSQL, through the installed entry point."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from durable import Runtime

from .worker_app import PER_KEY, RATED, WORKFLOWS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.postgres_only


async def _durable(dsn: str, schema: str, *argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "durable",
        "--schema",
        schema,
        *argv,
        cwd=ROOT,
        env={**os.environ, "DURABLE_DSN": dsn, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_queues_list_shows_limits_and_per_key_counts(dsn: str, schema: str) -> None:
    async with Runtime(dsn, schema=schema, workflows=WORKFLOWS, worker=False) as rt:
        for key in ("a", "a", "b"):
            await rt.trigger(PER_KEY, 1, key=key)
        await rt.trigger(RATED, 1)
    text = await _durable(dsn, schema, "queues", "list")
    queues_part, keys_part = text.split("\n\n")
    lines = queues_part.splitlines()
    assert lines[0].split() == [
        "QUEUE", "CONCURRENCY", "PER_KEY", "RATE_LIMIT", "ACTIVE", "PENDING", "RATE_WINDOW"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["per-key"] == ["per-key", "-", "1", "-", "0", "3", "-"]
    assert rows["rated"] == ["rated", "-", "-", "20/1s", "0", "1", "0/20"]
    assert [line.split() for line in keys_part.splitlines()] == [
        ["QUEUE", "KEY", "ACTIVE", "PENDING"],
        ["per-key", "a", "0", "2"],
        ["per-key", "b", "0", "1"],
    ]
    data = json.loads(await _durable(dsn, schema, "queues", "list", "--json"))
    by_name = {q["name"]: q for q in data}
    assert by_name["per-key"]["keys"] == [
        {"key": "a", "active": 0, "pending": 2},
        {"key": "b", "active": 0, "pending": 1},
    ]
    assert by_name["rated"]["rate_limit"] == 20
