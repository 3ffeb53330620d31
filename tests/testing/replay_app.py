"""The app `durable replay` checks in tests/testing/test_cli_replay.py (the deployed code)."""

from __future__ import annotations

from typing import Any

from durable import Context, workflow

CALLS: list[str] = []


def _hello(name: str) -> str:
    CALLS.append("hello")
    return f"hello {name}"


@workflow(name="greeting")
async def greeting(ctx: Context, name: str) -> Any:
    text = await ctx.step("hello", _hello, name)
    ack = await ctx.wait_for_signal("ack")
    await ctx.step("log", lambda: "logged")
    return {"text": text, "ack": ack}
