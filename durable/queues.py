"""`Queue`: flow control for a workflow's runs -- concurrency, per-key limits, rate limits.

A Queue is pure configuration. The limits are enforced by the store's claim path
(`Store.claim_queue`; for PostgreSQL the function `durable_claim_queue` of migration
0006), so they hold across every worker process on one database. See
docs/flow-control.md for what protects each limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from durable.durations import parse_duration
from durable.errors import ValidationError
from durable.store.base import QueueSpec, QueueStats, RunRecord


def _limit(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"invalid {what} {value!r}: must be an int >= 1 (or None)")
    return value


def _rate(value: Any) -> tuple[int, float] | None:
    if value is None:
        return None
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValidationError(
            f"invalid rate_limit {value!r}: expected (n, period), e.g. (100, '1s')"
        )
    n = _limit(value[0], "rate_limit count")
    assert n is not None
    try:
        period = parse_duration(value[1])
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"invalid rate_limit period {value[1]!r}: {exc}") from None
    if period <= 0:
        raise ValidationError(f"invalid rate_limit period {value[1]!r}: must be > 0")
    return n, period


class Queue:
    """A named set of limits shared by the runs of every workflow attached to it.

    Args:
        name: the queue's name; runs of workflows with the same queue name share its
            limits (every process must declare the same limits for one name).
        concurrency: most *active* runs (started and not ended, running or suspended)
            of the queue at once.
        per_key_concurrency: most active runs per `key` given to `trigger`; runs
            triggered without a key are limited by `concurrency` only.
        rate_limit: `(n, period)`: at most `n` run starts in any sliding `period`
            (a duration: seconds or a string like "1s", "1m").
    """

    __slots__ = ("concurrency", "name", "per_key_concurrency", "rate_limit")

    def __init__(
        self,
        name: str,
        concurrency: int | None = None,
        per_key_concurrency: int | None = None,
        rate_limit: tuple[int, Any] | None = None,
        **options: Any,
    ) -> None:
        # Unknown options fail by name (a typo like `concurency=` must not silently
        # leave a queue unlimited).
        if options:
            raise ValidationError(
                f"unknown Queue option(s) {sorted(options)!r}: expected concurrency, "
                "per_key_concurrency, rate_limit"
            )
        if not isinstance(name, str) or not name or "\x00" in name or "\x1f" in name:
            raise ValidationError(
                f"invalid queue name {name!r}: must be a non-empty string without NUL or \\x1f"
            )
        self.name = name
        self.concurrency = _limit(concurrency, "concurrency")
        self.per_key_concurrency = _limit(per_key_concurrency, "per_key_concurrency")
        self.rate_limit = _rate(rate_limit)

    def spec(self) -> QueueSpec:
        """The limits as the store receives them."""
        return QueueSpec(
            name=self.name,
            concurrency=self.concurrency,
            per_key_concurrency=self.per_key_concurrency,
            rate_limit=None if self.rate_limit is None else self.rate_limit[0],
            rate_period_s=None if self.rate_limit is None else self.rate_limit[1],
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(self.spec())

    def __repr__(self) -> str:
        parts = [repr(self.name)]
        for field in ("concurrency", "per_key_concurrency", "rate_limit"):
            value = getattr(self, field)
            if value is not None:
                parts.append(f"{field}={value!r}")
        return f"Queue({', '.join(parts)})"


class FlowOptions(msgspec.Struct, frozen=True):
    """`trigger`'s flow-control arguments, checked (see `flow_options`)."""

    queue: str | None
    key: str | None
    priority: int
    delay_s: float | None
    debounce_key: str | None
    debounce_s: float | None

    @property
    def deferred(self) -> bool:
        """True when the run may not start at once in this process (local dispatch off)."""
        return self.queue is not None or self.delay_s is not None or self.debounce_s is not None

    def ready_at(self, now: datetime) -> datetime | None:
        wait = self.debounce_s if self.debounce_s is not None else self.delay_s
        return None if wait is None else now + timedelta(seconds=wait)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or "\x1f" in value:
        raise ValidationError(
            f"invalid {what} {value!r}: must be a non-empty string without NUL or \\x1f"
        )
    return value


def flow_options(
    queue: Queue | None, *, key: Any, priority: Any, delay: Any, debounce: Any
) -> FlowOptions:
    """Check `trigger`'s key/priority/delay/debounce; ValidationError names the bad value."""
    if key is not None:
        if queue is None:
            raise ValidationError(
                f"invalid key {key!r}: the workflow has no queue (declare "
                "@workflow(queue=Queue(...)) to limit runs per key)"
            )
        _text(key, "key")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValidationError(f"invalid priority {priority!r}: must be an int")
    if not -(2**31) <= priority < 2**31:
        raise ValidationError(f"invalid priority {priority!r}: must fit in 32 bits")
    if priority != 0 and queue is None:
        raise ValidationError(
            f"invalid priority {priority!r}: the workflow has no queue to order runs in"
        )
    delay_s = None
    if delay is not None:
        try:
            delay_s = parse_duration(delay)
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"invalid delay {delay!r}: {exc}") from None
    debounce_key = debounce_s = None
    if debounce is not None:
        if not isinstance(debounce, tuple | list) or len(debounce) != 2:
            raise ValidationError(
                f"invalid debounce {debounce!r}: expected (key, window), e.g. ('customer-42', '5s')"
            )
        debounce_key = _text(debounce[0], "debounce key")
        try:
            debounce_s = parse_duration(debounce[1])
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"invalid debounce window {debounce[1]!r}: {exc}") from None
        if delay_s is not None:
            raise ValidationError(
                f"invalid delay {delay!r} with debounce: a debounced run starts its window "
                "after the last trigger"
            )
    return FlowOptions(
        queue=None if queue is None else queue.name,
        key=key,
        priority=priority,
        delay_s=delay_s,
        debounce_key=debounce_key,
        debounce_s=debounce_s,
    )


def wait_reasons(rec: RunRecord, stats: QueueStats | None, now: datetime) -> list[dict[str, Any]]:
    """Why a pending run has not started: its delay, a queue slot, a key slot, the rate
    limit (`RunInfo.pending` of a pending run). Empty when it may start now."""
    out: list[dict[str, Any]] = []
    if rec.ready_at is not None and rec.ready_at > now:
        out.append({"kind": "delay", "name": None, "until": rec.ready_at})
    if stats is None:
        return out
    if stats.concurrency is not None and stats.active >= stats.concurrency:
        out.append(
            {
                "kind": "queue_slot",
                "name": stats.name,
                "active": stats.active,
                "limit": stats.concurrency,
            }
        )
    if stats.per_key_concurrency is not None and rec.queue_key is not None:
        active = next((k.active for k in stats.keys if k.key == rec.queue_key), 0)
        if active >= stats.per_key_concurrency:
            out.append(
                {
                    "kind": "key_slot",
                    "name": rec.queue_key,
                    "active": active,
                    "limit": stats.per_key_concurrency,
                }
            )
    if stats.rate_limit is not None and stats.window_starts >= stats.rate_limit:
        out.append(
            {
                "kind": "rate_limit",
                "name": stats.name,
                "starts": stats.window_starts,
                "limit": stats.rate_limit,
                "period_s": stats.rate_period_s,
            }
        )
    return out
