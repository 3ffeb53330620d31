"""`durable worker APP --schema a --schema b` / `--schemas a,b`: one process, many schemas."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from cli_app.app import greet, wait_go
from test_cli import Result, _spawn, _stop, assert_one_line_failure

from durable import Runtime
from durable.cli_app import CliError
from durable.cli_schemas import requested


@pytest.fixture
async def schemas(dsn: str) -> AsyncIterator[list[str]]:
    names = [f"t_{uuid.uuid4().hex[:16]}" for _ in range(3)]
    yield names
    conn = await asyncpg.connect(dsn)
    try:
        for name in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


def test_requested_schemas_are_validated_and_deduplicated() -> None:
    args = argparse.Namespace(worker_schemas=["a", "b"], schema_list="b, c")
    assert requested(args) == ["a", "b", "c"]
    assert requested(argparse.Namespace(worker_schemas=None, schema_list=None)) == []
    with pytest.raises(CliError, match="invalid schema name"):
        requested(argparse.Namespace(worker_schemas=["ok", "bad-name"], schema_list=None))


@pytest.mark.parametrize("form", ["repeated", "list"])
async def test_one_worker_process_serves_several_schemas(
    dsn: str, schemas: list[str], form: str
) -> None:
    if form == "repeated":
        argv = ["worker", "cli_app.app", *(x for s in schemas for x in ("--schema", s))]
    else:
        argv = ["worker", "cli_app.app", "--schemas", ",".join(schemas)]
    proc = await _spawn([*argv, "--concurrency", "4"], dsn, schema=None)
    try:
        async with contextlib.AsyncExitStack() as stack:
            rts = [
                await stack.enter_async_context(
                    Runtime(dsn, schema=s, worker=False, workflows=[greet, wait_go])
                )
                for s in schemas
            ]
            handles = [await rt.trigger(greet, {"name": rt.schema}) for rt in rts]
            waits = [await rt.trigger(wait_go, None) for rt in rts]
            for rt, w in zip(rts, waits, strict=True):
                await rt.signal(w.run_id, "go", rt.schema)
            for rt, h, w in zip(rts, handles, waits, strict=True):
                assert await h.result(timeout=30) == {"greeting": f"hello {rt.schema}"}
                assert await w.result(timeout=30) == {"got": rt.schema}
        code, err = await _stop(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, err
    assert f"3 schemas [{', '.join(schemas)}]" in err
    assert "Traceback" not in err


async def test_bad_schema_name_is_a_one_line_usage_error(dsn: str) -> None:
    proc = await _spawn(["worker", "cli_app.app", "--schemas", "a,b;c"], dsn, schema=None)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert_one_line_failure(Result(proc.returncode or 0, out.decode(), err.decode()), 2, "b;c")
