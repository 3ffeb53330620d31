"""Schema names (issue 16, item 9 and the schema part of item 4).

The schema name becomes three SQL identifiers: the schema itself (created quoted), each
connection's `search_path` (unquoted, so folded to lower case) and the LISTEN/NOTIFY
channel `durable_<schema>` (at most 63 bytes). Before: `Foo` was created as `Foo` but
searched as `foo`, failing alone and silently sharing `foo`'s tables next to a
lower-case twin (notifying on another channel); a 60-character name passed validation,
migrated, then every trigger failed (`pg_notify`: channel name too long). Now the name is
checked once (durable/db_schema.py) at every edge -- RuntimeConfig (any store),
PostgresStore, the CLI -- with a ValidationError naming the rule, before anything is
created; and the longest accepted name works end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import msgspec
import pytest

from durable import Context, Runtime, ValidationError, workflow
from durable.cli_app import CliError
from durable.cli_schemas import requested
from durable.config import RuntimeConfig
from durable.core.vocabulary import NOTICE_DONE_PREFIX, NOTICE_WAKE
from durable.db_schema import MAX_IDENTIFIER_BYTES, MAX_SCHEMA_LENGTH, channel_for, quoted
from durable.store import MEMORY_URL
from durable.store.postgres import PostgresStore

# Each bad name is unique per test (`u`: a fresh hex id), so a run on code that wrongly
# creates it leaves nothing behind that a later run could trip on.
BAD: dict[str, Callable[[str], str]] = {
    "upper": lambda u: f"T_{u.upper()}",  # created quoted as T_..., searched as t_...
    "mixed": lambda u: f"t_{u}Bar",
    "56": lambda u: f"t_{u}".ljust(MAX_SCHEMA_LENGTH + 1, "x"),  # one over: 64-byte channel
    "60": lambda u: f"t_{u}".ljust(60, "x"),  # the length issue 16 found (passed the old check)
    "pg_": lambda u: f"pg_{u}",  # reserved by PostgreSQL: CREATE SCHEMA refuses it
}


@workflow(name="schema_names_echo")
async def echo(ctx: Context, x: int) -> int:
    return x


@workflow(name="schema_names_wait_go")
async def wait_go(ctx: Context, x: int) -> int:
    got = await ctx.wait_for_signal("go")
    return x + int(got)


async def namespaces(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
    finally:
        await conn.close()


@pytest.fixture(params=list(BAD))
async def bad(request: pytest.FixtureRequest, dsn: str) -> AsyncIterator[str]:
    """One bad schema name, unique to this test; dropped afterwards if anything made it."""
    name = BAD[request.param](uuid.uuid4().hex[:12])
    yield name
    await drop_raw(dsn, name)


async def drop_raw(dsn: str, name: str) -> None:
    """DROP SCHEMA for any name (quoted by hand: db_schema.quoted refuses bad names)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def test_bad_schema_name_is_refused_before_anything_is_created(dsn: str, bad: str) -> None:
    """Every way to name a schema refuses the name with the rule, on both stores."""
    rule = f"at most {MAX_SCHEMA_LENGTH} characters"
    with pytest.raises(ValidationError, match="invalid schema name") as raised:
        async with Runtime(dsn, schema=bad, worker=False):
            pass
    assert "lower-case letters" in str(raised.value) and rule in str(raised.value)
    with pytest.raises(ValidationError, match="invalid schema name"):
        Runtime(MEMORY_URL, schema=bad)
    with pytest.raises(ValidationError, match="invalid schema name"):
        RuntimeConfig(schema=bad)
    with pytest.raises(ValidationError, match="invalid schema name"):
        msgspec.structs.replace(RuntimeConfig(), schema=bad)  # Runtime.from_config's path
    with pytest.raises(ValidationError, match="invalid schema name"):
        PostgresStore(dsn, schema=bad)
    with pytest.raises(CliError, match="invalid schema name"):
        requested(argparse.Namespace(worker_schemas=["ok", bad], schema_list=None))
    assert bad not in await namespaces(dsn)


async def test_upper_case_twin_cannot_share_a_lower_case_schema(dsn: str, schema: str) -> None:
    """Before: a runtime on `T_...` next to one on `t_...` used t_'s tables and notified
    on another channel. Now the upper-case twin is refused and nothing is created."""
    twin = schema.upper()
    try:
        async with Runtime(dsn, schema=schema, workflows=[echo]) as rt:
            h = await rt.trigger(echo, 7)
            assert await h.result(timeout=30) == 7
            with pytest.raises(ValidationError, match=f"invalid schema name '{twin}'"):
                Runtime(dsn, schema=twin, workflows=[echo], worker=False)
            assert [r.run_id for r in await rt.list_runs()] == [h.run_id]
        assert twin not in await namespaces(dsn)
    finally:
        await drop_raw(dsn, twin)


@pytest.fixture
async def longest_schema(dsn: str) -> AsyncIterator[str]:
    """A unique schema name of exactly MAX_SCHEMA_LENGTH characters, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex}".ljust(MAX_SCHEMA_LENGTH, "x")
    yield name
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quoted(name)} CASCADE")
    finally:
        await conn.close()


async def test_schema_at_the_maximum_length_works_end_to_end(dsn: str, longest_schema: str) -> None:
    """The longest accepted name: migrations, trigger, a worker woken only by NOTIFY (it
    polls once an hour), a signal, the result; the channel is not truncated."""
    name = longest_schema
    channel = channel_for(name)
    assert len(name) == MAX_SCHEMA_LENGTH and len(channel.encode()) == MAX_IDENTIFIER_BYTES
    heard: list[str] = []
    listener = await asyncpg.connect(dsn)
    try:
        # Quoted by asyncpg: this is exactly the channel the engine must notify on.
        await listener.add_listener(channel, lambda *a: heard.append(str(a[3])))
        worker_rt = Runtime(dsn, schema=name, workflows=[wait_go], poll_interval="1h")
        client_rt = Runtime(dsn, schema=name, workflows=[wait_go], worker=False)
        async with worker_rt, client_rt:
            h = await client_rt.trigger(wait_go, 40)
            await until_status(client_rt, h.run_id, "suspended")
            await client_rt.signal(h.run_id, "go", 2)
            assert await h.result(timeout=60) == 42
        done = NOTICE_DONE_PREFIX + h.run_id
        async with asyncio.timeout(60):  # the listener's connection delivers them async
            while not (NOTICE_WAKE in heard and done in heard):
                await asyncio.sleep(0.05)
    finally:
        await listener.close()
    assert name in await namespaces(dsn)


async def until_status(rt: Runtime, run_id: str, status: str) -> None:
    """Wait (bounded) until the run reaches `status`; a hang guard, not a timing check."""
    async with asyncio.timeout(60):
        while str(await rt.handle(run_id).status()) != status:
            await asyncio.sleep(0.05)
