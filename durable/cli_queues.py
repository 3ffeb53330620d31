"""`durable queues list`: flow-control queues, their limits and what they hold now.

Rendered here (not in cli.py) so the command module stays small; the data comes from
`Runtime.list_queues` (`Store.queue_stats`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import msgspec

from durable.store.base import QueueStats


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


def _rate(q: QueueStats) -> tuple[str, str]:
    if q.rate_limit is None or q.rate_period_s is None:
        return "-", "-"
    return f"{q.rate_limit}/{q.rate_period_s:g}s", f"{q.window_starts}/{q.rate_limit}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def render_queues(queues: Sequence[QueueStats], *, as_json: bool) -> str:
    """The queues as a table (then their keys), or as a JSON array of QueueStats."""
    if as_json:
        return json.dumps(msgspec.to_builtins(list(queues)), indent=2)
    if not queues:
        return "no queues"
    rows = []
    for q in queues:
        rate, window = _rate(q)
        rows.append(
            [
                q.name,
                _limit(q.concurrency),
                _limit(q.per_key_concurrency),
                rate,
                str(q.active),
                str(q.pending),
                window,
            ]
        )
    text = _table(
        ["QUEUE", "CONCURRENCY", "PER_KEY", "RATE_LIMIT", "ACTIVE", "PENDING", "RATE_WINDOW"],
        rows,
    )
    keys = [[q.name, k.key, str(k.active), str(k.pending)] for q in queues for k in q.keys]
    if keys:
        text += "\n\n" + _table(["QUEUE", "KEY", "ACTIVE", "PENDING"], keys)
    return text
