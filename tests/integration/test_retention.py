"""Retention: purging finished runs and their history, via the API and the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest

from durable import Context, RunNotFound, workflow

from .conftest import MakeRuntime


@workflow
async def short(ctx: Context, _: Any) -> int:
    await ctx.step("one", lambda: 1)
    return 1


@workflow
async def blocked(ctx: Context, _: Any) -> None:
    await ctx.wait_for_signal("never")


async def test_purge_deletes_old_finished_runs_only(make_rt: MakeRuntime) -> None:
    async with make_rt(short, blocked) as rt:
        done = [await rt.trigger(short, None) for _ in range(3)]
        for h in done:
            await h.result(timeout=10)
        waiting = await rt.trigger(blocked, None)
        await asyncio.sleep(0.2)
        assert await rt.purge_runs("1h") == 0  # nothing is that old yet
        assert await rt.purge_runs(0, batch=2) == 3  # batches of 2: 2 + 1
        for h in done:
            try:
                await rt.get_run(h.run_id)
            except RunNotFound:
                continue
            raise AssertionError("purged run still there")
        assert (await rt.get_run(waiting.run_id)).status in ("suspended", "running")
        for h in done:  # their history went with them
            assert await rt.store.load_events(h.run_id) == []


@pytest.mark.postgres_only
async def test_cli_purge(make_rt: MakeRuntime, dsn: str, schema: str) -> None:
    async with make_rt(short) as rt:
        await (await rt.trigger(short, None)).result(timeout=10)
    env = {**os.environ, "DURABLE_DSN": dsn}
    cmd = [sys.executable, "-m", "durable", "--schema", schema, "runs", "purge"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, check=False)

    ok = await asyncio.to_thread(run, "--older-than", "0s")
    assert ok.returncode == 0, ok.stderr
    assert "deleted 1 finished run" in ok.stdout
    bad = await asyncio.to_thread(run, "--older-than", "soon")
    assert bad.returncode == 2
    assert "invalid duration" in bad.stderr
