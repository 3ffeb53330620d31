"""Security: schema-name validation, hook-token entropy, no DSN password in errors/logs.

(SQL text in names and payloads is covered by test_bad_input.py.)
"""

from __future__ import annotations

import base64
import logging
import traceback
from typing import Any

import asyncpg
import pytest

from durable import Context, Runtime, ValidationError, workflow

from .conftest import MakeRuntime
from .harness import capture_problems

SECRET = "s3cret-Pa55word-4-tests"


@pytest.mark.parametrize(
    "bad",
    [
        "x; drop table",
        'durable"; DROP SCHEMA public CASCADE; --',
        "public; DROP",
        "",
        "1starts_with_digit",
        "a" * 64,
        "with space",
        "nul\x00",
        "dash-ed",
        "ünïcode",
    ],
)
async def test_schema_name_is_validated_before_any_sql(dsn: str, bad: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        before = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
        with pytest.raises(ValidationError, match="invalid schema name"):
            async with Runtime(dsn, schema=bad, worker=False):
                pass
        after = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
        assert before == after
        assert await conn.fetchval("SELECT to_regclass('public.pg_class') IS NULL")
    finally:
        await conn.close()


@workflow(name="many_hooks")
async def many_hooks(ctx: Context, n: int) -> list[str]:
    return [(await ctx.create_hook(f"h{i}")).token for i in range(n)]


async def test_hook_tokens_carry_at_least_128_random_bits(make_rt: MakeRuntime, db: Any) -> None:
    async with make_rt(many_hooks) as rt:
        runs = [await rt.trigger(many_hooks, 20) for _ in range(10)]
        tokens: list[str] = []
        for h in runs:
            tokens.extend(await h.result(timeout=10))
    assert len(tokens) == len(set(tokens)) == 200
    stored = {r["token"]: r["run_id"] for r in await db.fetch("SELECT token, run_id FROM hooks")}
    assert set(stored) == set(tokens)
    # Tokens are "h" + base64url(random bytes): the prefix keeps them from starting with
    # "-", which the CLI would read as an option.
    assert all(t.startswith("h") for t in tokens)
    bodies = [t[1:] for t in tokens]
    for token, body in zip(tokens, bodies, strict=True):
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        assert len(raw) * 8 >= 128, f"token {token!r} carries {len(raw) * 8} bits"
        run_id = stored[token]
        assert run_id not in token and token not in run_id  # not derived from the run id
    # Crude randomness check over all tokens: every bit position is set in some tokens
    # and clear in others (a counter or a timestamp would leave high bits constant).
    raws = [base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)) for b in bodies]
    width = min(len(r) for r in raws) * 8
    for bit in range(width):
        ones = sum((int.from_bytes(r, "big") >> bit) & 1 for r in raws)
        assert 40 <= ones <= 160, f"bit {bit} is set in {ones}/200 tokens"


def _full_text(exc: BaseException) -> str:
    """The message plus everything a traceback would print, chained exceptions included."""
    return "".join(traceback.format_exception(exc))


async def _connect_error(dsn: str) -> str:
    try:
        async with Runtime(dsn, schema="never_created", worker=False):
            pass
    except Exception as exc:
        return _full_text(exc)
    raise AssertionError(f"connecting to {dsn!r} succeeded")


async def test_dsn_password_never_in_errors_or_logs(dsn: str, schema: str) -> None:
    host = dsn.split("@", 1)[1].split("/", 1)[0]
    with capture_problems() as cap:
        texts = {
            "closed port": await _connect_error(f"postgresql://postgres:{SECRET}@127.0.0.1:1/db"),
            "unknown database": await _connect_error(
                f"postgresql://postgres:{SECRET}@{host}/no_such_db_for_durable_tests"
            ),
            "unknown host": await _connect_error(
                f"postgresql://postgres:{SECRET}@no-such-host.invalid:5432/db"
            ),
            "keyword DSN": await _connect_error(
                f"host=127.0.0.1 port=1 user=postgres password={SECRET}"
            ),
        }
        # A working runtime (trust auth ignores the password) logs nothing secret either.
        good = dsn.replace("postgres@", f"postgres:{SECRET}@", 1)
        if SECRET in good:

            @workflow(name="tiny")
            async def tiny(ctx: Context, _: Any) -> int:
                return int(await ctx.step("one", lambda: 1))

            async with Runtime(good, schema=schema, workflows=[tiny], poll_interval="100ms") as rt:
                assert await (await rt.trigger(tiny, None)).result(timeout=10) == 1
    for what, text in texts.items():
        assert SECRET not in text, f"{what}: the password leaked: {text}"
    assert "127.0.0.1:1" in texts["closed port"]  # the DSN is still shown, redacted
    assert SECRET not in cap.text(logging.DEBUG)


async def test_dsn_password_as_query_parameter_is_redacted() -> None:
    """Regression: the Runtime's redaction used to mask only `user:pw@host`, printing a
    `?password=` query parameter (a form asyncpg accepts) verbatim."""
    text = await _connect_error(f"postgresql://postgres@127.0.0.1:1/db?password={SECRET}")
    assert SECRET not in text, text
