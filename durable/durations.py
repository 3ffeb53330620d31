"""Parsing of the duration forms the API accepts ("500ms", 10, timedelta, {"amount", "unit"})."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,  # 365 days: a fixed length, never a calendar year
}
_WORD_UNITS = {
    "millisecond": "ms",
    "milliseconds": "ms",
    "ms": "ms",
    "second": "s",
    "seconds": "s",
    "s": "s",
    "minute": "m",
    "minutes": "m",
    "m": "m",
    "hour": "h",
    "hours": "h",
    "h": "h",
    "day": "d",
    "days": "d",
    "d": "d",
    "week": "w",
    "weeks": "w",
    "w": "w",
    "year": "y",
    "years": "y",
    "y": "y",
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w|y)\s*$")

Duration = str | int | float | timedelta | dict[str, Any]

MAX_SECONDS = 1000 * 365.25 * 86400.0
"""Durations over 1,000 years are refused: now plus (or minus) one must stay within the
dates Python's datetime can represent (years 1 to 9999), or the operation fails later
with an OverflowError instead of at the call."""


def _float(number: int | float, value: Any) -> float:
    try:
        return float(number)
    except OverflowError:  # an int too large for a float
        raise ValueError(f"invalid duration {value!r}: must be at most 1000 years") from None


def parse_duration(value: Any) -> float:
    """Return `value` as a non-negative number of seconds, or raise ValueError naming it.

    Raising before the operation takes a history position keeps bad input out of the log.
    """
    seconds: float
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. '10s', 5, or a timedelta")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = _float(value, value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(
                f"invalid duration {value!r}: expected a number and a unit "
                "(ms, s, m, h, d, w, y), e.g. '500ms' or '2h'"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    elif isinstance(value, dict):
        amount = value.get("amount")
        unit = value.get("unit")
        if (
            set(value) != {"amount", "unit"}
            or isinstance(amount, bool)
            or not isinstance(amount, int | float)
            or not isinstance(unit, str)
            or unit not in _WORD_UNITS
        ):
            raise ValueError(
                f"invalid duration {value!r}: expected {{'amount': number, 'unit': "
                "'milliseconds'|'seconds'|'minutes'|'hours'|'days'|'weeks'|'years'}"
            )
        seconds = _float(amount, value) * _UNITS[_WORD_UNITS[unit]]
    else:
        raise ValueError(
            f"invalid duration {value!r}: expected a string like '10s', a number of seconds, "
            "a timedelta or {'amount': n, 'unit': 'hours'}"
        )
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
    if seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {value!r}: must be at most 1000 years")
    return seconds
