"""Quick start: a workflow with steps, a durable sleep and a signal.

    python examples/quickstart.py

Uses $DURABLE_DSN when set, else starts an embedded PostgreSQL (durable-pg[embedded]).
"""

from __future__ import annotations

import asyncio

import msgspec

from durable import Context, Runtime, workflow


class Signup(msgspec.Struct):
    email: str
    plan: str = "free"


def create_account(email: str) -> dict:
    # Any function works as a step: sync ones run in a thread, async ones on the loop.
    print(f"  [step] creating account for {email}")
    return {"account_id": f"acct-{email.split('@')[0]}", "email": email}


async def send_email(to: str, subject: str) -> str:
    print(f"  [step] emailing {to}: {subject!r}")
    return f"sent:{subject}"


@workflow(version="1", schema=Signup)
async def onboard(ctx: Context, signup: Signup) -> dict:
    account = await ctx.step("create-account", create_account, signup.email)
    await ctx.step("welcome-email", send_email, signup.email, "Welcome!")
    await ctx.sleep("grace-period", "1s")  # durable: survives restarts
    choice = await ctx.wait_for_signal("plan-chosen", timeout="1m")  # None on timeout
    plan = choice["plan"] if choice else signup.plan
    await ctx.step("confirm-email", send_email, signup.email, f"You are on {plan}")
    return {"account": account["account_id"], "plan": plan}


async def main(dsn: str | None = None, schema: str | None = None) -> dict:
    async with Runtime(dsn, workflows=[onboard], schema=schema or "durable") as rt:
        handle = await rt.trigger(onboard, {"email": "ada@example.com"})
        print(f"started run {handle.run_id}")
        while await handle.status() in ("pending", "running"):
            await asyncio.sleep(0.05)
        info = await rt.get_run(handle.run_id)
        waits = [(w["kind"], w["name"]) for w in info.pending]
        print(f"run is {info.status} (holding no worker), waiting on {waits}")
        # Signals are buffered until the workflow waits for them: sending early is fine.
        await rt.signal(handle.run_id, "plan-chosen", {"plan": "pro"})
        result = await handle.result(timeout=30)
        print(f"result: {result}")
        info = await rt.get_run(handle.run_id)
        for event in info.history:
            print(f"  {event.seq:>2} {event.kind:<16} {event.name}")
        return result


if __name__ == "__main__":
    asyncio.run(main())
