"""`durable worker APP --reload`: a real supervisor process, a real file change, real Postgres.

The worker restarts on a change without losing a run: the old process releases the run
waiting on a signal, the new one resumes it from history, and a step recorded before
the restart is neither executed nor recorded again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from durable import Context, Runtime, workflow

REPO_DIR = Path(__file__).resolve().parent.parent

APP_SOURCE = """
import os

from durable import workflow


def mark(path):
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\\n")
    return os.getpid()


@workflow
async def waiter(ctx, inp):
    first = await ctx.step("first", mark, inp["marks"])
    payload = await ctx.wait_for_signal("go")
    second = await ctx.step("second", os.getpid)
    return {"first": first, "second": second, "payload": payload}
"""

ADDED_WORKFLOW = """

@workflow
async def added_later(ctx, inp):
    return "new code"
"""


@workflow(name="waiter")
async def waiter_stub(ctx: Context, inp: Any) -> Any:
    """The client side only triggers by name; the worker process runs the real code."""


class Lines:
    """Collects a process's stderr lines as they come, for waiting on a log line."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace").rstrip())
            self._changed.set()

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines)

    async def wait(self, needle: str, times: int = 1, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while self.count(needle) < times:
                self._changed.clear()
                await self._changed.wait()

    def pids(self) -> list[int]:
        found = (re.search(r"worker process (\d+) started", line) for line in self.lines)
        return [int(m.group(1)) for m in found if m]

    def text(self) -> str:
        return "\n".join(self.lines)


async def test_reload_restarts_the_worker_and_in_flight_runs_resume(
    dsn: str, schema: str, tmp_path: Path
) -> None:
    app_file = tmp_path / "reload_app.py"
    app_file.write_text(APP_SOURCE)
    marks = tmp_path / "marks.txt"
    env = dict(os.environ, DURABLE_DSN=dsn, PYTHONPATH=str(REPO_DIR))
    async with Runtime(dsn, schema=schema, worker=False, workflows=[waiter_stub]) as rt:
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "durable", "--schema", schema],
            *["worker", "reload_app", "--reload"],
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        log = Lines(proc.stderr)
        try:
            await log.wait("worker started")
            h = await rt.trigger("waiter", {"marks": str(marks)})
            async with asyncio.timeout(20):
                while await h.status() != "suspended":
                    await asyncio.sleep(0.05)

            app_file.write_text(APP_SOURCE + ADDED_WORKFLOW)
            await log.wait("reload_app.py changed: restarting the worker")
            await log.wait("worker started", times=2)
            assert "added_later@1" in log.text()

            await rt.signal(h.run_id, "go", {"ok": True})
            out = await h.result(timeout=20)

            code = None
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            for pid in log.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        info = await rt.get_run(h.run_id)
    first_pid, second_pid = log.pids()
    assert out == {"first": first_pid, "second": second_pid, "payload": {"ok": True}}
    # The step before the restart ran once and is recorded once.
    assert marks.read_text().split() == [str(first_pid)]
    completed = [e.name for e in info.history if e.kind == "step_completed"]
    assert completed == ["first", "second"]
    assert log.count("releasing in-flight runs") == 2  # restart and final stop
    assert code == 0, log.text()
    assert "Traceback" not in log.text()


async def test_reload_with_an_unknown_app_fails_before_starting(
    dsn: str, schema: str, tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "durable", "--schema", schema],
        *["worker", "no_such_app_module", "--reload"],
        cwd=tmp_path,
        env=dict(os.environ, DURABLE_DSN=dsn, PYTHONPATH=str(REPO_DIR)),
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        "durable: error: --reload: cannot find app module 'no_such_app_module'"
    ]


@pytest.mark.parametrize("spec", ["pkg_app.flows", "pkg_app.flows:wf"])
def test_app_paths_watch_the_top_level_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    from durable.reload import app_paths

    (tmp_path / "pkg_app").mkdir()
    (tmp_path / "pkg_app" / "__init__.py").write_text("")
    (tmp_path / "single_app.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert app_paths(spec) == [(tmp_path / "pkg_app").resolve()]
    assert app_paths("single_app") == [tmp_path.resolve()]
