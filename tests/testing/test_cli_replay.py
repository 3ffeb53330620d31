"""`durable runs export` and `durable replay`, run as real subprocesses on real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from durable import Runtime

from .replay_app import greeting

REPO_DIR = Path(__file__).resolve().parents[2]
APP = "tests.testing.replay_app"
CHANGED = "tests.testing.replay_app_changed"


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
        cwd=REPO_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _runs(dsn: str, schema: str) -> tuple[str, str]:
    """One finished and one waiting run of `greeting`: (completed id, suspended id)."""
    async with Runtime(dsn, schema=schema, workflows=[greeting]) as rt:
        done = await rt.trigger(greeting, "ada")
        await rt.signal(done.run_id, "ack", "ok")
        await done.result(timeout=20)
        waiting = await rt.trigger(greeting, "bob")
        for _ in range(500):
            if await waiting.status() == "suspended":
                break
            await asyncio.sleep(0.02)
        assert await waiting.status() == "suspended"
    return done.run_id, waiting.run_id


async def test_export_writes_the_run_with_exact_payload_bytes(
    dsn: str, schema: str, db: Any, tmp_path: Path
) -> None:
    done, _ = await _runs(dsn, schema)
    out = tmp_path / "run.json"
    code, stdout, _ = await durable_cli(dsn, schema, "runs", "export", done, "--out", str(out))
    assert code == 0 and str(out) in stdout
    doc = json.loads(out.read_text())
    assert doc["format"] == "durable-run/1"
    assert doc["run"]["run_id"] == done and doc["run"]["status"] == "completed"
    assert doc["run"]["output"] == {"text": "hello ada", "ack": "ok"}
    rows = await db.fetch("SELECT seq, payload FROM events WHERE run_id = $1 ORDER BY seq", done)
    assert [(e["seq"], e["payload"]) for e in doc["events"]] == [
        (r["seq"], None if r["payload"] is None else r["payload"].hex()) for r in rows
    ]
    code, stdout, _ = await durable_cli(dsn, schema, "runs", "export", done)
    assert code == 0 and json.loads(stdout) == doc


async def test_replay_files_pass_on_unchanged_code_and_fail_after_a_change(
    dsn: str, schema: str, tmp_path: Path
) -> None:
    done, waiting = await _runs(dsn, schema)
    files = []
    for run_id in (done, waiting):
        files.append(str(tmp_path / f"{run_id}.json"))
        code, _, _ = await durable_cli(dsn, schema, "runs", "export", run_id, "--out", files[-1])
        assert code == 0
    code, out, err = await durable_cli(dsn, schema, "replay", APP, *files)
    assert (code, err) == (0, "")
    assert "2 run(s) checked, 0 misfit(s)" in out
    code, out, _ = await durable_cli(dsn, schema, "replay", CHANGED, *files)
    assert code == 1
    misfits = [line for line in out.splitlines() if line.startswith("MISFIT")]
    assert len(misfits) == 2
    for run_id, line in zip((done, waiting), misfits, strict=True):
        assert run_id in line
        assert "position 1" in line
        assert "step 'audit'" in line and "signal 'ack'" in line


async def test_replay_stored_runs_of_a_workflow(dsn: str, schema: str) -> None:
    done, waiting = await _runs(dsn, schema)
    code, out, _ = await durable_cli(dsn, schema, "replay", APP, "--workflow", "greeting")
    assert code == 0 and "2 run(s) checked, 0 misfit(s)" in out
    code, out, _ = await durable_cli(
        dsn, schema, "replay", CHANGED, "--workflow", "greeting", "--status", "suspended"
    )
    assert code == 1
    assert "1 run(s) checked, 1 misfit(s)" in out
    assert waiting in out and done not in out


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (("replay", APP), 2, "either FILE"),
        (("replay", APP, "x.json", "--workflow", "greeting"), 2, "either FILE"),
        (("replay", APP, "x.json", "--limit", "3"), 2, "--workflow"),
        (("replay", APP, "/nonexistent/run.json"), 1, "cannot read"),
        (("runs", "export", "no-such-run"), 1, "no-such-run"),
    ],
)
async def test_errors_fail_in_one_line(
    dsn: str, schema: str, argv: tuple[str, ...], code: int, needle: str
) -> None:
    got, _, err = await durable_cli(dsn, schema, *argv)
    assert got == code
    assert len(err.strip().splitlines()) == 1 and needle in err


async def test_replay_rejects_a_file_that_is_not_an_export(
    dsn: str, schema: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    code, _, err = await durable_cli(dsn, schema, "replay", APP, str(bad))
    assert code == 1 and "not a durable run export" in err
