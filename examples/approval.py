"""Expense approval: a signal with a timeout, then a hook as the escalation path.

The workflow asks a manager for approval and waits for the `manager-approval` signal
for a short while. If nobody answers in time, it creates a hook (a one-time,
unguessable token), publishes the token as a custom event, and waits for finance to
complete it, e.g. from a link in an email that an HTTP handler turns into
`runtime.execute_hook(token, payload)`.

    python examples/approval.py
"""

from __future__ import annotations

import asyncio

from durable import Context, RunClosed, Runtime, workflow

payments: list[dict] = []


def record_request(employee: str, amount: int) -> dict:
    return {"status": "pending", "employee": employee, "amount": amount}


def pay(employee: str, amount: int) -> dict:
    payments.append({"employee": employee, "amount": amount})
    return {"paid": True}


def notify_rejection(employee: str, reason: str) -> dict:
    return {"notified": employee, "reason": reason}


@workflow(name="expense_approval", version="1")
async def expense_approval(ctx: Context, expense: dict) -> dict:
    await ctx.step("request-expense", record_request, expense["employee"], expense["amount"])
    decision = await ctx.wait_for_signal("manager-approval", timeout=expense["manager_timeout"])
    approver = "manager"
    if decision is None:  # the manager did not answer in time: escalate through a hook
        hook = await ctx.create_hook("finance-approval")
        await ctx.emit_event("approval-link", {"token": hook.token})
        decision = await hook.wait(timeout="1m")
        approver = "finance"
        if decision is None:
            decision = {"approved": False, "reason": "nobody answered"}
    if decision["approved"]:
        await ctx.step("process-payment", pay, expense["employee"], expense["amount"])
        return {"status": "approved", "by": approver}
    await ctx.step(
        "notify-rejection", notify_rejection, expense["employee"], decision.get("reason", "")
    )
    return {"status": "rejected", "by": approver, "reason": decision.get("reason")}


async def wait_for_token(rt: Runtime, run_id: str) -> str:
    """What the email-sending side would do: read the token from the run's events."""
    async with asyncio.timeout(30):
        while True:
            for event in await rt.get_events(run_id):
                if event.kind == "approval-link":
                    return str(event.payload["token"])
            await asyncio.sleep(0.05)


async def main(dsn: str | None = None, schema: str | None = None) -> dict:
    payments.clear()
    async with Runtime(dsn, workflows=[expense_approval], schema=schema or "durable") as rt:
        # 1. The manager answers in time.
        quick = await rt.trigger(
            expense_approval, {"employee": "ana", "amount": 120, "manager_timeout": "5s"}
        )
        await rt.signal(quick.run_id, "manager-approval", {"approved": True})
        first = await quick.result(timeout=10)
        print(f"ana's expense: {first}")

        # 2. The manager is silent: the signal times out and finance gets a hook.
        slow = await rt.trigger(
            expense_approval, {"employee": "bo", "amount": 9000, "manager_timeout": "500ms"}
        )
        token = await wait_for_token(rt, slow.run_id)
        while await slow.status() in ("pending", "running"):
            await asyncio.sleep(0.02)
        waits = (await rt.get_run(slow.run_id)).pending
        print(f"bo's expense waits on {[(w['kind'], w['name']) for w in waits]}")
        # The HTTP handler behind the emailed link does this; it returns the run's id.
        await rt.execute_hook(token, {"approved": False, "reason": "over budget"})
        second = await slow.result(timeout=10)
        print(f"bo's expense: {second}")
        try:  # a hook completes once
            await rt.execute_hook(token, {"approved": True})
            reused = True
        except RunClosed:
            reused = False
        history = [e.kind for e in (await rt.get_run(slow.run_id)).history]
        print(f"bo's history: {history}")
    return {"first": first, "second": second, "hook_reusable": reused, "payments": payments}


if __name__ == "__main__":
    asyncio.run(main())
