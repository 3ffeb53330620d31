"""Retry policy: how many attempts a step gets and how long to wait between them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durable.durations import parse_duration


class RetryPolicy:
    """Exponential backoff. `max_attempts` counts every attempt, the first included.

    `non_retryable` lists exception types (or their names) that fail the step at once.

    `should_retry(error, attempt)` (sync or async; `attempt` counts from 1) decides
    dynamically after a failed attempt that may still be retried (below
    `max_attempts`, not `non_retryable`): `True` retries after the backoff, `False`
    fails the step, a duration (anything `parse_duration` accepts) retries after
    that delay instead of the backoff. Its verdict is recorded with the failure, so
    replays never call it again. If it raises or returns anything else, the step
    fails finally and the failure names it (a broken policy must not retry forever).
    """

    __slots__ = (
        "backoff_coefficient",
        "initial_interval",
        "max_attempts",
        "maximum_interval",
        "non_retryable",
        "should_retry",
    )

    def __init__(
        self,
        max_attempts: int = 5,
        initial_interval: Any = "1s",
        backoff_coefficient: float = 2.0,
        maximum_interval: Any = "1m",
        non_retryable: tuple[type[BaseException] | str, ...] | list[type[BaseException] | str] = (),
        should_retry: Callable[[Exception, int], Any] | None = None,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"invalid max_attempts {max_attempts!r}: must be an int >= 1")
        if not isinstance(backoff_coefficient, int | float) or backoff_coefficient < 1:
            raise ValueError(f"invalid backoff_coefficient {backoff_coefficient!r}: must be >= 1")
        if should_retry is not None and not callable(should_retry):
            raise TypeError(
                f"invalid should_retry {should_retry!r}: must be a callable (error, attempt)"
            )
        self.max_attempts = max_attempts
        self.initial_interval = parse_duration(initial_interval)
        self.backoff_coefficient = float(backoff_coefficient)
        self.maximum_interval = parse_duration(maximum_interval)
        self.non_retryable = tuple(non_retryable)
        self.should_retry = should_retry

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        delay = self.initial_interval * self.backoff_coefficient ** (attempt - 1)
        return min(delay, self.maximum_interval)

    def may_retry(self, attempt: int, exc: BaseException) -> bool:
        """Whether failed attempt `attempt` may be retried before `should_retry` has its say."""
        return attempt < self.max_attempts and self.is_retryable(exc)

    def is_retryable(self, exc: BaseException) -> bool:
        for item in self.non_retryable:
            if isinstance(item, str):
                if any(cls.__name__ == item for cls in type(exc).__mro__):
                    return False
            elif isinstance(exc, item):
                return False
        return True

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_attempts={self.max_attempts}, "
            f"initial_interval={self.initial_interval}, "
            f"backoff_coefficient={self.backoff_coefficient}, "
            f"maximum_interval={self.maximum_interval}"
            + ("" if self.should_retry is None else f", should_retry={self.should_retry!r}")
            + ")"
        )


DEFAULT_RETRY = RetryPolicy()
