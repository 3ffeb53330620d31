"""The `durable` command, run as a real subprocess against a real PostgreSQL.

Every call is `python -m durable --schema <per-test schema> ...` with `DURABLE_DSN`
set to the session's DSN; runs are started (and advanced with `sweep()`) through the
Python API in the test itself. The app the worker loads lives in tests/cli_app/.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from cli_app.app import approve, greet, wait_go

from durable import RunInfo, Runtime
from durable.cli import redact_dsn

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
CLI_TIMEOUT_S = 60.0
RUNINFO_FIELDS = set(RunInfo.__struct_fields__)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()


def _env(dsn: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DURABLE_DSN", None)
    if dsn is not None:
        env["DURABLE_DSN"] = dsn
    # `durable` importable from the checkout, `cli_app` from tests/ (the cwd).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_DIR), env.get("PYTHONPATH", "")) if p)
    return env


async def _spawn(
    argv: Sequence[str], dsn: str | None, *, schema: str | None
) -> asyncio.subprocess.Process:
    prefix = [sys.executable, "-m", "durable"]
    if schema is not None:
        prefix += ["--schema", schema]
    return await asyncio.create_subprocess_exec(
        *prefix,
        *argv,
        cwd=TESTS_DIR,
        env=_env(dsn),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


class Cli:
    """Runs `python -m durable --schema SCHEMA ...` with DURABLE_DSN set (unless told not to)."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema

    async def __call__(self, *argv: str, env_dsn: bool = True, schema: bool = True) -> Result:
        proc = await _spawn(
            argv, self.dsn if env_dsn else None, schema=self.schema if schema else None
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    async def ok(self, *argv: str) -> str:
        res = await self(*argv)
        assert res.code == 0, f"durable {' '.join(argv)} exited {res.code}: {res.err}"
        return res.out

    async def json(self, *argv: str) -> Any:
        return msgspec.json.decode(await self.ok(*argv, "--json"))


@pytest.fixture
def cli(dsn: str, schema: str) -> Cli:
    return Cli(dsn, schema)


@asynccontextmanager
async def client(dsn: str, schema: str) -> AsyncIterator[Runtime]:
    async with Runtime(dsn, schema=schema, worker=False, workflows=[greet, wait_go]) as rt:
        yield rt


def assert_one_line_failure(res: Result, code: int, *needles: str) -> None:
    assert res.code == code, (res.code, res.out, res.err)
    assert len(res.err_lines) == 1, res.err
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in res.err, (needle, res.err)


# -- migrate, DSN and connection errors --------------------------------------------------


async def test_migrate_creates_tables_and_is_idempotent(cli: Cli, dsn: str, schema: str) -> None:
    out = await cli.ok("migrate")
    assert "migrations applied" in out
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
        )
    finally:
        await conn.close()
    assert tables > 0
    assert "migrations applied" in await cli.ok("migrate")


@pytest.mark.parametrize(
    "argv", [("runs", "list"), ("migrate",), ("cancel", "x"), ("worker", "cli_app.app")]
)
async def test_missing_dsn_is_a_usage_error(cli: Cli, argv: tuple[str, ...]) -> None:
    res = await cli(*argv, env_dsn=False)
    assert_one_line_failure(res, 2, "DURABLE_DSN", "--dsn")


async def test_dsn_option_overrides_environment(cli: Cli, dsn: str) -> None:
    # The environment's DSN points nowhere; --dsn wins.
    cli.dsn = "postgresql://nobody:nothing@127.0.0.1:1/none"
    out = await cli.ok("--dsn", dsn, "migrate")
    assert "migrations applied" in out


async def test_unreachable_database_fails_in_one_line_without_password(cli: Cli) -> None:
    secret = "s3cr3t-pw"
    bad = f"postgresql://someone:{secret}@127.0.0.1:1/nowhere"
    for argv in (("runs", "list"), ("migrate",), ("worker", "cli_app.app")):
        res = await cli("--dsn", bad, *argv)
        assert_one_line_failure(res, 1, "cannot connect")
        assert secret not in res.err + res.out
        assert "someone" in res.err  # the DSN is named, minus its password


async def test_malformed_dsn_fails_in_one_line(cli: Cli) -> None:
    res = await cli("--dsn", "postgresql://u:pw-xyz@127.0.0.1:notaport/db", "runs", "list")
    assert_one_line_failure(res, 1)
    assert "pw-xyz" not in res.err


def test_redact_dsn() -> None:
    assert redact_dsn("postgresql://u:p%40ss@h:5432/db") == "postgresql://u@h:5432/db"
    assert redact_dsn("postgresql://u@h/db") == "postgresql://u@h/db"
    assert "secret" not in redact_dsn("postgresql://h/db?user=u&password=secret")
    assert "secret" not in redact_dsn("host=h user=u password=secret dbname=d")


async def test_usage_errors_exit_2(cli: Cli) -> None:
    for argv in (
        ("runs", "list", "--status", "bogus"),
        ("runs", "list", "--limit", "0"),
        ("runs",),
        ("frobnicate",),
        ("worker", "cli_app.app", "--concurrency", "0"),
    ):
        res = await cli(*argv)
        assert res.code == 2, (argv, res)
        assert "Traceback" not in res.err


# -- runs list / show ---------------------------------------------------------------------


async def test_runs_list_table_json_and_filters(cli: Cli, dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        g1 = await rt.trigger(greet, {"name": "ann"})
        g2 = await rt.trigger(greet, {"name": "bob"})
        w = await rt.trigger(wait_go, None)
        await rt.sweep()
        assert await g1.result(timeout=5) == {"greeting": "hello ann"}

    table = (await cli.ok("runs", "list")).splitlines()
    assert table[0].split() == [
        "RUN_ID",
        "WORKFLOW",
        "VERSION",
        "STATUS",
        "CREATED_AT",
        "UPDATED_AT",
    ]
    assert len(table) == 4
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[g1.run_id][1:4] == ["greet", "1", "completed"]
    assert rows[w.run_id][1:4] == ["wait_go", "2", "suspended"]

    runs = await cli.json("runs", "list")
    assert isinstance(runs, list)
    assert [r["run_id"] for r in runs] == [w.run_id, g2.run_id, g1.run_id]  # newest first
    for r in runs:
        assert set(r) == RUNINFO_FIELDS
    by_id = {r["run_id"]: r for r in runs}
    assert by_id[g2.run_id]["input"] == {"name": "bob"}
    assert by_id[g2.run_id]["output"] == {"greeting": "hello bob"}
    assert by_id[w.run_id]["status"] == "suspended"

    greets = await cli.json("runs", "list", "--workflow", "greet")
    assert {r["run_id"] for r in greets} == {g1.run_id, g2.run_id}
    suspended = await cli.json("runs", "list", "--status", "suspended")
    assert [r["run_id"] for r in suspended] == [w.run_id]
    assert len(await cli.json("runs", "list", "--limit", "1")) == 1
    assert await cli.json("runs", "list", "--workflow", "nothing") == []


async def test_runs_show_human_and_json(cli: Cli, dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        g = await rt.trigger(greet, {"name": "cy"})
        w = await rt.trigger(wait_go, None)
        await rt.sweep()
        expected = await rt.get_run(g.run_id)

    out = await cli.ok("runs", "show", w.run_id)
    assert w.run_id in out
    assert "wait_go" in out
    assert "suspended" in out
    waiting = next(line for line in out.splitlines() if line.startswith("waiting on"))
    assert "signal" in waiting
    assert "'go'" in waiting

    out = await cli.ok("runs", "show", g.run_id)
    assert "completed" in out
    assert "hello cy" in out
    assert "make_greeting" in out  # the step's event line
    lines = out.splitlines()
    history_at = next(i for i, line in enumerate(lines) if line.startswith("history"))
    assert len(lines) - history_at - 2 == len(expected.history)  # header + one per event

    info = await cli.json("runs", "show", g.run_id)
    assert set(info) == RUNINFO_FIELDS
    assert info["run_id"] == g.run_id
    assert info["status"] == "completed"
    assert info["input"] == {"name": "cy"}
    assert info["output"] == {"greeting": "hello cy"}
    assert len(info["history"]) == len(expected.history)
    assert [e["kind"] for e in info["history"]] == [e.kind for e in expected.history]
    assert {"seq", "kind", "name", "payload", "created_at"} <= set(info["history"][0])


@pytest.mark.parametrize(
    "argv",
    [
        ("runs", "show", "no-such-run"),
        ("runs", "show", "no-such-run", "--json"),
        ("signal", "no-such-run", "go"),
        ("cancel", "no-such-run"),
    ],
)
async def test_unknown_run_fails_in_one_line(cli: Cli, argv: tuple[str, ...]) -> None:
    await cli.ok("migrate")
    res = await cli(*argv)
    assert_one_line_failure(res, 1, "no-such-run")
    assert res.out == ""


# -- signal / cancel ------------------------------------------------------------------------


async def test_signal_reaches_the_waiting_run(cli: Cli, dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        w = await rt.trigger(wait_go, None)
        await rt.sweep()
        assert await w.status() == "suspended"

        out = await cli.ok("signal", w.run_id, "go", '{"approved": true, "n": [1, 2]}')
        assert "go" in out

        await rt.sweep()  # a worker pass: the signal wakes the run
        assert await w.result(timeout=5) == {"got": {"approved": True, "n": [1, 2]}}

        # Finished runs take no more signals.
        res = await cli("signal", w.run_id, "go")
        assert_one_line_failure(res, 1, w.run_id, "completed")


async def test_signal_payload_defaults_to_null(cli: Cli, dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        w = await rt.trigger(wait_go, None)
        await cli.ok("signal", w.run_id, "go")  # buffered before the run even starts
        await rt.sweep()
        assert await w.result(timeout=5) == {"got": None}


async def test_signal_invalid_json_is_a_usage_error(cli: Cli, dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        w = await rt.trigger(wait_go, None)
        res = await cli("signal", w.run_id, "go", "{not json")
        assert_one_line_failure(res, 2, "JSON")
        await rt.sweep()
        assert await w.status() == "suspended"  # nothing was delivered


async def test_cancel_then_cancel_again(cli: Cli, dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        w = await rt.trigger(wait_go, None)
        await rt.sweep()

        out = await cli.ok("cancel", w.run_id)
        assert "cancelled" in out
        assert await w.status() == "cancelled"
        assert (await cli.json("runs", "show", w.run_id))["status"] == "cancelled"

        res = await cli("cancel", w.run_id)
        assert_one_line_failure(res, 1, w.run_id, "already cancelled")


# -- worker -------------------------------------------------------------------------------


async def _stop(proc: asyncio.subprocess.Process, timeout: float = 10.0) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize("app", ["cli_app.app", "cli_app.app:workflows", "cli_app.app:runtime"])
async def test_worker_executes_runs_and_stops_on_sigterm(dsn: str, schema: str, app: str) -> None:
    async with client(dsn, schema) as rt:  # migrates, so the worker and trigger can race freely
        proc = await _spawn(["worker", app, "--concurrency", "4"], dsn, schema=schema)
        try:
            handle = await rt.trigger(greet, {"name": "dee"})
            assert await handle.result(timeout=30) == {"greeting": "hello dee"}

            started = asyncio.get_running_loop().time()
            code, err = await _stop(proc)
            assert asyncio.get_running_loop().time() - started < 10
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code == 0, err
    assert "worker started" in err
    assert "greet@1" in err
    assert "Traceback" not in err


async def test_trigger_starts_runs_idempotently(cli: Cli, dsn: str, schema: str) -> None:
    out = await cli.ok("trigger", "cli_app.app", "greet", '{"name": "ada"}')
    assert out.startswith("run ") and out.strip().endswith("started"), out
    run_id = out.split()[1]
    args = ("trigger", "cli_app.app", "greet", '{"name": "bo"}', "--idempotency-key", "k1")
    first = await cli.ok(*args)
    again = await cli.ok(*args)
    assert first.split()[1] == again.split()[1]
    assert "exists" in again
    async with client(dsn, schema) as rt:
        await rt.sweep()
        assert await rt.handle(run_id).result(timeout=5) == {"greeting": "hello ada"}
        assert len(await rt.list_runs(workflow="greet")) == 2


async def test_trigger_errors_fail_in_one_line(cli: Cli) -> None:
    assert_one_line_failure(await cli("trigger", "cli_app.app", "nope"), 1, "nope")
    res = await cli("trigger", "cli_app.app", "greet", "{bad json")
    assert res.code == 2
    res = await cli("trigger", "cli_app.app", "greet", '{"name": 1}', "--version", "9")
    assert_one_line_failure(res, 1, "version")


async def test_trigger_wait_prints_the_result(cli: Cli, dsn: str, schema: str) -> None:
    async with Runtime(dsn, schema=schema, workflows=[greet], poll_interval="100ms"):
        out = await cli.ok("trigger", "cli_app.app", "greet", '{"name": "cy"}', "--wait", "20")
    assert msgspec.json.decode(out) == {"greeting": "hello cy"}


async def test_hook_command_completes_a_hook_once(cli: Cli, dsn: str, schema: str) -> None:
    async with Runtime(dsn, schema=schema, worker=False, workflows=[approve]) as rt:
        h = await rt.trigger(approve, None)
        await rt.sweep()
        assert await h.status() == "suspended"
        info = await rt.get_run(h.run_id)
        token = next(e.payload for e in info.history if e.kind == "hook_created")
        out = await cli.ok("hook", token, '{"ok": true}')
        assert h.run_id in out
        await rt.sweep()
        assert await h.result(timeout=5) == {"decision": {"ok": True}}
        assert_one_line_failure(await cli("hook", token), 1, "already used")
        assert_one_line_failure(await cli("hook", "not-a-token"), 1, "token")


async def test_worker_delivers_cli_signal(cli: Cli, dsn: str, schema: str) -> None:
    async with client(dsn, schema) as rt:
        proc = await _spawn(["worker", "cli_app.app"], dsn, schema=schema)
        try:
            w = await rt.trigger(wait_go, None)
            await cli.ok("signal", w.run_id, "go", '"now"')
            assert await w.result(timeout=30) == {"got": "now"}
            code, err = await _stop(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code == 0, err


@pytest.mark.parametrize(
    ("app", "needle"),
    [
        ("cli_app.nope", "cli_app.nope"),
        ("no_such_pkg_xyz", "no_such_pkg_xyz"),
        ("cli_app.app:missing", "missing"),
        ("cli_app.app:not_a_workflow", "not_a_workflow"),
        ("cli_app", "no @workflow"),
    ],
)
async def test_worker_bad_app_fails_in_one_line(cli: Cli, app: str, needle: str) -> None:
    res = await cli("worker", app)
    assert res.code in (1, 2), res
    assert "Traceback" not in res.err
    assert needle in res.err_lines[-1], res.err
    assert res.err_lines[-1].startswith("durable: error:")


# -- schedules ------------------------------------------------------------------------------


async def test_schedules_list_pause_resume(cli: Cli, dsn: str, schema: str) -> None:
    from cli_app.scheduled import yearly

    # A worker runtime registers its workflows' schedules; a sweep ticks them once.
    async with Runtime(dsn, schema=schema, worker=True, workflows=[yearly]) as rt:
        await rt.sweep()

    listed = await cli.json("schedules", "list")
    assert isinstance(listed, list)
    assert any("cli-yearly" in msgspec.json.encode(s).decode() for s in listed), listed
    assert "cli-yearly" in await cli.ok("schedules", "list")

    assert "paused" in await cli.ok("schedules", "pause", "cli-yearly")
    entry = next(s for s in await cli.json("schedules", "list") if "cli-yearly" in str(s))
    if "paused" in entry:
        assert entry["paused"] is True
    assert "resumed" in await cli.ok("schedules", "resume", "cli-yearly")
    entry = next(s for s in await cli.json("schedules", "list") if "cli-yearly" in str(s))
    if "paused" in entry:
        assert entry["paused"] is False

    res = await cli("schedules", "pause", "no-such-schedule")
    assert_one_line_failure(res, 1, "no-such-schedule")
