"""Workflows the CLI tests run: `durable worker cli_app.app` (cwd: tests/)."""

from __future__ import annotations

from typing import Any

from durable import Context, Runtime, workflow


def make_greeting(name: str) -> str:
    return f"hello {name}"


@workflow(version="1")
async def greet(ctx: Context, input: dict[str, Any]) -> dict[str, Any]:
    text = await ctx.step("make_greeting", make_greeting, input["name"])
    return {"greeting": text}


@workflow(version="2")
async def wait_go(ctx: Context, input: Any) -> dict[str, Any]:
    payload = await ctx.wait_for_signal("go")
    return {"got": payload}


@workflow(version="1")
async def approve(ctx: Context, input: Any) -> dict[str, Any]:
    hook = await ctx.create_hook("approval")
    decision = await hook.wait(timeout="1h")
    return {"decision": decision}


#: `cli_app.app:workflows`: an explicit list.
workflows = [greet, wait_go]

#: `cli_app.app:runtime`: a Runtime whose registry the worker uses (no DSN of its own).
runtime = Runtime(workflows=[greet], schema="cli_app_unused")

#: Not a workflow, for the error path.
not_a_workflow = 42
