"""The `durable` command on hostile arguments (issue 16, items 12 and 15): a one-line
reason and a non-zero exit, never a traceback; hook tokens starting with '-' accepted."""

from __future__ import annotations

import asyncpg
from cli_app.app import approve
from test_cli import Cli, assert_one_line_failure, cli

from durable import Runtime, codec

__all__ = ["cli"]  # the fixture, re-used from test_cli


async def test_port_out_of_range_fails_in_one_line(cli: Cli) -> None:
    res = await cli("--dsn", "postgresql://postgres@127.0.0.1:99999/postgres", "runs", "list")
    assert_one_line_failure(res, 1, "cannot connect", "65535")


async def test_purge_with_huge_duration_fails_in_one_line(cli: Cli) -> None:
    res = await cli("runs", "purge", "--older-than", "99999999999d")
    assert_one_line_failure(res, 2, "invalid duration", "1000 years")


async def test_deeply_nested_json_payload_fails_in_one_line(cli: Cli) -> None:
    deep = "[" * 30_000 + "]" * 30_000
    res = await cli("signal", "some-run", "go", deep)
    assert_one_line_failure(res, 2, "invalid JSON payload", "nested too deeply")


async def test_hook_token_starting_with_dash(cli: Cli, dsn: str, schema: str) -> None:
    """Older tokens can start with '-': `durable hook -TOKEN` must not read it as an option.

    Such a token is made by rewriting a fresh hook's token where it is stored (hook row,
    history, the run's wait key), as a release minting them would have left it."""
    assert_one_line_failure(await cli("hook", "-no-such-token"), 1, "no hook")
    async with Runtime(dsn, schema=schema, worker=False, workflows=[approve]) as rt:
        h = await rt.trigger(approve, None)
        await rt.sweep()
    old = await rt_history_token(dsn, schema)
    token = "-" + old
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        async with conn.transaction():
            await conn.execute("UPDATE hooks SET token = $1", token)
            await conn.execute(
                "UPDATE events SET payload = $1 WHERE kind = 'hook_created'", codec.encode(token)
            )
            await conn.execute(
                "UPDATE runs SET waiting_on = array_replace(waiting_on, $1, $2)",
                "h:" + old,
                "h:" + token,
            )
    finally:
        await conn.close()
    out = await cli.ok("hook", token, '{"ok": true}')
    assert h.run_id in out
    async with Runtime(dsn, schema=schema, worker=False, workflows=[approve]) as rt:
        await rt.sweep()
        assert await rt.handle(h.run_id).result(timeout=5) == {"decision": {"ok": True}}


async def rt_history_token(dsn: str, schema: str) -> str:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        token: str = codec.decode(
            await conn.fetchval("SELECT payload FROM events WHERE kind = 'hook_created'")
        )
    finally:
        await conn.close()
    return token


async def test_bad_schema_fails_in_one_line_and_creates_nothing(
    cli: Cli, dsn: str, schema: str
) -> None:
    """Item 9: an upper-case `--schema` (before: created as `T_...`, then the migrations
    failed in `t_...`) or one too long for its NOTIFY channel fails naming the rule."""
    twin, long = schema.upper(), schema.ljust(56, "x")
    try:
        res = await cli("--schema", twin, "migrate", schema=False)
        assert_one_line_failure(res, 1, f"invalid schema name '{twin}'", "lower-case letters")
        res = await cli("--schema", long, "migrate", schema=False)
        assert_one_line_failure(res, 1, "(56 characters)", "at most 55 characters")
        res = await cli("worker", "cli_app.app", "--schemas", f"{schema},{twin}", schema=False)
        assert_one_line_failure(res, 2, f"invalid schema name '{twin}'")
        conn = await asyncpg.connect(dsn)
        try:
            made = await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])",
                [twin, long, schema],
            )
        finally:
            await conn.close()
        assert made == []
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            for name in (twin, long):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()
