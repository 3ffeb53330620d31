"""Workflows the CLI fork tests load with `--app upgrades.fork_app` (cwd: tests/)."""

from __future__ import annotations

from durable import Context, RetryPolicy, workflow

ONCE = RetryPolicy(max_attempts=1)


def broken(n: int) -> int:
    raise RuntimeError("still broken")


@workflow(name="cli_fork", version="1", retry_policy=ONCE)
async def cli_fork_v1(ctx: Context, n: int) -> int:
    a = await ctx.step("prepare", lambda: n + 1)
    return int(await ctx.step("finish", broken, a))


@workflow(name="cli_fork", version="2", retry_policy=ONCE)
async def cli_fork_v2(ctx: Context, n: int) -> int:
    a = await ctx.step("prepare", lambda: n + 1)
    return int(await ctx.step("finish", lambda: a * 10))


@workflow(name="cli_chain", version="1")
async def cli_chain(ctx: Context, n: int) -> int:
    if n < 1:
        await ctx.continue_as_new(n + 1)
    return n


workflows = [cli_fork_v1, cli_fork_v2, cli_chain]
