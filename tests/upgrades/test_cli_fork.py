"""`durable runs fork` and the continue-as-new / fork chain in `durable runs show`."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from durable import Runtime, WorkflowFailed

from .fork_app import cli_chain, cli_fork_v1, cli_fork_v2

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = TESTS_DIR.parent


async def durable_cli(dsn: str, schema: str, *argv: str) -> tuple[int, str, str]:
    env = dict(os.environ, DURABLE_DSN=dsn)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_DIR), env.get("PYTHONPATH")) if p)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "durable",
        "--schema",
        schema,
        *argv,
        cwd=TESTS_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_runs_fork_onto_new_version_and_show_the_chain(dsn: str, schema: str) -> None:
    workflows = [cli_fork_v1, cli_fork_v2, cli_chain]
    async with Runtime(dsn, schema=schema, workflows=workflows, poll_interval="100ms") as rt:
        h = await rt.trigger(cli_fork_v1, 4)
        with pytest.raises(WorkflowFailed):
            await h.result(timeout=10)
        before = len(await rt.list_runs())

        code, _, err = await durable_cli(dsn, schema, "runs", "fork", h.run_id, "--version", "2")
        assert code == 2
        assert "--version needs --app" in err
        code, _, err = await durable_cli(
            dsn, schema, "runs", "fork", h.run_id, "--at", "nope", "--app", "upgrades.fork_app"
        )
        assert code == 1
        assert len(err.strip().splitlines()) == 1
        assert "no step named 'nope'" in err
        code, _, err = await durable_cli(
            dsn, schema, "runs", "fork", h.run_id, "--version", "3", "--app", "upgrades.fork_app"
        )
        assert code == 1
        assert "version '3'" in err
        assert len(await rt.list_runs()) == before  # nothing written by the failures

        code, out, err = await durable_cli(
            dsn, schema, "runs", "fork", h.run_id, "--version", "2", "--app", "upgrades.fork_app"
        )
        assert code == 0, err
        new_id = out.split()[1]
        assert out.strip() == f"run {new_id} forked from {h.run_id}"
        assert await rt.handle(new_id).result(timeout=10) == 50
        code, out, _ = await durable_cli(dsn, schema, "runs", "show", new_id)
        assert code == 0
        assert re.search(rf"forked from\s+{h.run_id}", out)

        chain = await rt.trigger(cli_chain, 0)
        assert await chain.result(timeout=10) == 1
        successor = (await rt.get_run(chain.run_id)).continued_as
        assert successor is not None
        code, out, _ = await durable_cli(dsn, schema, "runs", "show", chain.run_id)
        assert re.search(rf"continued as\s+{successor}", out)
        assert "run_continued" in out
        code, out, _ = await durable_cli(dsn, schema, "runs", "show", successor)
        assert re.search(rf"continued from\s+{chain.run_id}", out)
