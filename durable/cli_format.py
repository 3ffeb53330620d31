"""Text output of the command line: tables, times, compact and pretty JSON.

Pure helpers with no knowledge of runs or databases, apart from cli.py (which holds the
commands) so that the commands module stays readable and within its size limit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec

#: Longest rendering of a payload in human output (`--json` is never shortened).
SHORT_PAYLOAD = 80


def fmt_time(value: Any, timespec: str = "seconds") -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec=timespec)
    if value is None:
        return "-"
    return str(value)


def to_json_value(value: Any) -> Any:
    try:
        return msgspec.to_builtins(value)
    except TypeError:
        return repr(value)


def compact(value: Any, limit: int = SHORT_PAYLOAD) -> str:
    """A short one-line rendering of a decoded payload (JSON when possible)."""
    try:
        text = msgspec.json.encode(msgspec.to_builtins(value)).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dump_json(value: Any) -> str:
    data = msgspec.json.encode(msgspec.to_builtins(value))
    return msgspec.json.format(data, indent=2).decode()


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    body = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *body]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def clip(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
