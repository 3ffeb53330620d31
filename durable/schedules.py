"""Cron schedules: `Schedule` declarations and the scheduler that fires each tick once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from croniter import croniter

from durable.errors import ValidationError


class Schedule:
    """A cron schedule on a workflow: 5 fields, or 6 with seconds first.

    `input` is a value or a zero-argument callable evaluated at fire time; `timezone`
    None means the runtime's timezone.
    """

    __slots__ = ("expression", "input", "name", "timezone")

    def __init__(
        self,
        expression: str,
        name: str | None = None,
        input: Any | Callable[[], Any] = None,
        timezone: str | None = None,
    ) -> None:
        fields = expression.split() if isinstance(expression, str) else []
        if len(fields) not in (5, 6) or not croniter.is_valid(
            " ".join(fields[1:] + fields[:1]) if len(fields) == 6 else expression
        ):
            raise ValidationError(
                f"invalid cron expression {expression!r}: expected 5 fields "
                "(minute hour day month weekday) or 6 with seconds first"
            )
        self.expression = expression
        self.name = name
        self.input = input
        self.timezone = timezone

    def __repr__(self) -> str:
        return f"Schedule({self.expression!r}, name={self.name!r})"
