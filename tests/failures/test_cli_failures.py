"""The CLI on failures: tracebacks, retry, leases and live workers in `runs show`,
honest `trigger --wait` timeouts, and read-only commands that never create a schema."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from cli_app.app import greet
from test_cli import Cli, assert_one_line_failure

from durable import Context, RetryPolicy, Runtime, workflow

fixed = {"on": False}


def _ship(_: Any) -> str:
    if not fixed["on"]:
        raise RuntimeError("carrier API rejected the label")
    return "shipped"


@workflow(retry_policy=RetryPolicy(max_attempts=1))
async def ship(ctx: Context, inp: Any) -> Any:
    return await ctx.step("ship", _ship, inp)


@workflow
async def hold(ctx: Context, _: Any) -> Any:
    return await ctx.wait_for_signal("go")


@pytest.fixture
def cli(dsn: str, schema: str) -> Cli:
    return Cli(dsn, schema)


async def _schema_exists(dsn: str, name: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(
            await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname=$1)", name)
        )
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "argv",
    [
        ("runs", "list"),
        ("runs", "show", "r1"),
        ("schedules", "list"),
        ("runs", "export", "r1"),
        ("replay", "cli_app.app", "--workflow", "greet"),
    ],
)
async def test_read_only_commands_never_create_a_schema(
    cli: Cli, dsn: str, schema: str, argv: tuple[str, ...]
) -> None:
    res = await cli(*argv)
    assert_one_line_failure(res, 1, f"schema {schema!r} does not exist", "durable migrate")
    assert not await _schema_exists(dsn, schema)


async def test_runs_show_and_retry_a_failed_run(cli: Cli, dsn: str, schema: str) -> None:
    fixed["on"] = False
    async with Runtime(dsn, schema=schema, workflows=[ship], poll_interval="100ms") as rt:
        h = await rt.trigger(ship, {"id": 7})
        with pytest.raises(Exception, match="carrier API"):
            await h.result(timeout=10)
        out = await cli.ok("runs", "show", h.run_id)
        assert "traceback:" in out and "Traceback (most recent call last)" in out
        assert "RuntimeError: carrier API rejected the label" in out and "_ship" in out
        fixed["on"] = True
        out = await cli.ok("runs", "retry", h.run_id)
        assert f"run {h.run_id} retried" in out
        assert await rt.handle(h.run_id).result(timeout=10) == "shipped"
        res = await cli("runs", "retry", h.run_id)
        assert_one_line_failure(res, 1, "completed", "only a failed run")
        res = await cli("runs", "retry", "nope")
        assert_one_line_failure(res, 1, "no run with id 'nope'")


async def test_runs_show_says_who_holds_a_run_and_who_serves_it(
    cli: Cli, dsn: str, schema: str
) -> None:
    async with Runtime(dsn, schema=schema, workflows=[hold], worker=False) as client:
        h = await client.trigger(hold)
        out = await cli.ok("runs", "show", h.run_id)
        assert "no live worker serves workflow 'hold' version '1'" in out
        # A run held by a worker: its lease holder and expiry.
        claimed = await client.store.claim(
            owner="box:9:abc", keys=[("hold", "1")], limit=1, now=client.clock.now(), lease_s=60
        )
        assert claimed
        out = await cli.ok("runs", "show", h.run_id)
        assert "held by worker box:9:abc (until " in out
        await client.store.release("box:9:abc", [h.run_id], client.clock.now())
        async with Runtime(dsn, schema=schema, workflows=[hold], poll_interval="50ms") as w:
            for _ in range(200):
                if (await w.get_run(h.run_id)).status == "suspended":
                    break
                await asyncio.sleep(0.02)
            out = await cli.ok("runs", "show", h.run_id)
            assert "1 live worker(s) serve workflow 'hold' version '1'" in out
            assert w.executor.owner in out


async def test_trigger_wait_timeout_names_the_run_and_why(cli: Cli, dsn: str, schema: str) -> None:
    async with Runtime(dsn, schema=schema, worker=False, workflows=[greet]):
        pass  # migrated; no worker runs
    res = await cli("trigger", "cli_app.app", "greet", '{"name": "x"}', "--wait", "1")
    assert res.code == 1, res
    lines = res.err_lines
    assert lines[0].startswith("run ") and "waiting up to 1s" in lines[0]
    run_id = lines[0].split()[1]
    assert "talking to PostgreSQL" not in res.err
    assert run_id in lines[-1] and "pending" in lines[-1]
    assert "no live worker serves workflow 'greet' version '1'" in lines[-1]
