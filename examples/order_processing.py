"""Order processing (the Sonamu `process_order` example): validated input, five steps,
a flaky payment provider retried under a dynamic policy (`should_retry`) with an alert
on each failed attempt (`on_error`), services handed to the workflow by the runtime's
`context_provider`, an out-of-stock order that fails for good, and an idempotency key
that makes a double submit harmless.

    python examples/order_processing.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import uuid

import msgspec

from durable import (
    Context,
    ExecutionInfo,
    RetryPolicy,
    Runtime,
    ValidationError,
    WorkflowFailed,
    current_context,
    workflow,
)


class Item(msgspec.Struct):
    product_id: int
    quantity: int
    price: int


class Order(msgspec.Struct):
    order_id: int
    user_id: int
    items: list[Item]
    total_amount: int
    shipping_address: str


class OutOfStock(Exception):
    """A business error: retrying will not help, so the policy marks it non-retryable."""


# -- stand-ins for the services a real application would call -----------------------


class Inventory:
    def __init__(self, stock: dict[int, int]) -> None:
        self.stock = stock

    def check(self, items: list[Item]) -> dict:
        for item in items:
            if self.stock.get(item.product_id, 0) < item.quantity:
                raise OutOfStock(f"product {item.product_id} is out of stock")
        return {"available": True}

    def decrease(self, items: list[Item]) -> dict:
        for item in items:
            self.stock[item.product_id] -= item.quantity
        return {p: q for p, q in self.stock.items()}


class PaymentService:
    """Fails its first call (a network blip) to show step retries."""

    def __init__(self) -> None:
        self.calls = 0
        self._ids = itertools.count(1)

    async def charge(self, user_id: int, amount: int, order_id: int) -> dict:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("payment gateway timed out")
        return {"id": f"pay_{next(self._ids)}", "amount": amount, "order_id": order_id}


inventory = Inventory({101: 5, 102: 1})
payments = PaymentService()
notifications: list[str] = []
alerts: list[str] = []


@dataclasses.dataclass
class Services:
    """What the workflow reads as `ctx.context` (Sonamu's `contextProvider`)."""

    inventory: Inventory
    payments: PaymentService
    notifications: list[str]
    provided_for: str


def provide_services(info: ExecutionInfo) -> Services:
    """Built for each execution of a run (first claim, any replay); never recorded."""
    return Services(inventory, payments, notifications, info.run_id)


def create_shipment(order_id: int, address: str) -> dict:
    return {"tracking_number": f"TRK{order_id:06d}", "address": address}


def notify(user_id: int, message: str) -> None:
    # A step reaches the run's services without being passed ctx.
    current_context().notifications.append(f"user {user_id}: {message}")


def retry_decision(error: Exception, attempt: int) -> bool | str:
    """Sonamu's dynamic policy: a declined card is final; anything else is retried
    after a delay that grows with the attempt (instead of the exponential backoff)."""
    if "declined" in str(error):
        return False
    return f"{attempt * 100}ms"


def alert(error: Exception, attempt: int) -> None:
    """VSKI's `onError`: called after each failed attempt (at least once, not recorded)."""
    alerts.append(f"payment attempt {attempt} failed: {error}")


# Fast retries for the demo; the default is 5 attempts from 1s, doubling, at most 1m.
FAST_RETRY = RetryPolicy(
    max_attempts=3,
    initial_interval="100ms",
    backoff_coefficient=2.0,
    maximum_interval="1s",
    non_retryable=[OutOfStock],
    should_retry=retry_decision,
)


@workflow(name="process_order", version="1.0", schema=Order, retry_policy=FAST_RETRY)
async def process_order(ctx: Context, order: Order) -> dict:
    ctx.logger.info("processing order %s", order.order_id)
    services: Services = ctx.context
    await ctx.step("check-inventory", services.inventory.check, order.items)
    payment = await ctx.step(
        "process-payment",
        services.payments.charge,
        order.user_id,
        order.total_amount,
        order.order_id,
        on_error=alert,
    )
    await ctx.step("decrease-inventory", services.inventory.decrease, order.items)
    shipping = await ctx.step(
        "start-shipping", create_shipment, order.order_id, order.shipping_address
    )
    await ctx.step(
        "send-notifications",
        notify,
        order.user_id,
        f"order {order.order_id} confirmed, tracking {shipping['tracking_number']}",
    )
    return {
        "order_id": order.order_id,
        "payment_id": payment["id"],
        "tracking_number": shipping["tracking_number"],
        "status": "completed",
    }


def order(order_id: int, product_id: int, quantity: int) -> dict:
    return {
        "order_id": order_id,
        "user_id": 7,
        "items": [{"product_id": product_id, "quantity": quantity, "price": 1500}],
        "total_amount": 1500 * quantity,
        "shipping_address": "1 Main St",
    }


def reset() -> None:
    """Fresh demo state, so `main` can run more than once in one process."""
    inventory.stock = {101: 5, 102: 1}
    payments.calls = 0
    notifications.clear()
    alerts.clear()


async def main(dsn: str | None = None, schema: str | None = None) -> dict:
    reset()
    # A real application would use the order id alone as the key; the suffix lets the
    # demo run again against the same database.
    demo = uuid.uuid4().hex[:8]
    async with Runtime(
        dsn,
        workflows=[process_order],
        schema=schema or "durable",
        context_provider=provide_services,
    ) as rt:
        good = await rt.trigger(process_order, order(1, 101, 2), idempotency_key=f"order-1-{demo}")
        again = await rt.trigger(process_order, order(1, 101, 2), idempotency_key=f"order-1-{demo}")
        print(
            f"order 1: run {good.run_id} (double submit returned the same run: "
            f"{again.run_id == good.run_id})"
        )
        bad = await rt.trigger(process_order, order(2, 102, 3), idempotency_key=f"order-2-{demo}")

        completed = await good.result(timeout=30)
        print(f"order 1 completed: {completed}")
        info = await rt.get_run(good.run_id)
        payment_events = [
            (e.kind, e.payload.get("error_type") if e.kind == "step_failed" else None)
            for e in info.history
            if e.name == "process-payment"
        ]
        print(f"  payment history: {payment_events}")
        print(f"  alerts: {alerts}")

        try:
            await bad.result(timeout=30)
            failure = None
        except WorkflowFailed as exc:
            failure = exc.error
            print(f"order 2 failed: {failure}")

        # Invalid input is rejected at trigger time and nothing is written.
        try:
            await rt.trigger(process_order, {"order_id": "not a number"})
            rejected = False
        except ValidationError as exc:
            rejected = True
            print(f"invalid order rejected, nothing written: {exc}")

        return {
            "completed": completed,
            "same_run": again.run_id == good.run_id,
            "payment_attempts": payments.calls,
            "payment_events": [k for k, _ in payment_events],
            "failure": failure,
            "rejected": rejected,
            "notifications": list(notifications),
            "alerts": list(alerts),
            "stock": dict(inventory.stock),
        }


if __name__ == "__main__":
    # ctx.logger writes to the "durable.workflow" logger (silent while a run replays).
    logging.basicConfig(level=logging.WARNING, format="  %(levelname)s %(name)s: %(message)s")
    logging.getLogger("durable.workflow").setLevel(logging.INFO)
    asyncio.run(main())
