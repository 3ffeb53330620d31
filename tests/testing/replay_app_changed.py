"""`replay_app` after a deliberate change: a step inserted before the signal wait."""

from __future__ import annotations

from typing import Any

from durable import Context, workflow


@workflow(name="greeting")
async def greeting(ctx: Context, name: str) -> Any:
    text = await ctx.step("hello", lambda: f"hello {name}")
    await ctx.step("audit", lambda: "audited")
    ack = await ctx.wait_for_signal("ack")
    await ctx.step("log", lambda: "logged")
    return {"text": text, "ack": ack}
