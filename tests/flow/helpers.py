"""Reading recorded run times back from the store, and checking limits on them.

Limits are checked on what the database recorded (each run's `started_at` and
`finished_at`), never on logs or in-process counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from durable.store.memory import MemoryStore


class Span:
    """One run's recorded life: [started_at, finished_at) and its key and input."""

    def __init__(
        self,
        run_id: str,
        key: str | None,
        priority: int,
        started: datetime | None,
        finished: datetime | None,
        created: datetime,
    ) -> None:
        self.run_id = run_id
        self.key = key
        self.priority = priority
        self.started = started
        self.finished = finished
        self.created = created


async def spans(dsn: str | None, schema: str | None, memory: MemoryStore | None) -> list[Span]:
    """Every run's recorded span, from the store itself."""
    if memory is not None:
        return [
            Span(r.id, r.queue_key, r.priority, r.started_at, r.finished_at, r.created_at)
            for r in memory._runs.values()
        ]
    assert dsn is not None and schema is not None
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch(
            "SELECT id, queue_key, priority, started_at, finished_at, created_at FROM runs"
        )
    finally:
        await conn.close()
    return [Span(*r) for r in rows]


def max_overlap(items: Iterable[Span]) -> int:
    """The most spans active at one instant (a finish at t frees the slot for a start at t)."""
    points: list[tuple[datetime, int]] = []
    for s in items:
        assert s.started is not None and s.finished is not None, s.run_id
        points += [(s.started, 1), (s.finished, -1)]
    points.sort(key=lambda p: (p[0], p[1]))  # finishes before starts at equal times
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def max_per_key_overlap(items: Sequence[Span]) -> dict[str | None, int]:
    by_key: dict[str | None, list[Span]] = {}
    for s in items:
        by_key.setdefault(s.key, []).append(s)
    return {k: max_overlap(v) for k, v in by_key.items()}


def max_starts_in_window(items: Iterable[Span], period_s: float) -> int:
    """The most starts in any half-open window (t - period, t]."""
    starts = sorted(s.started for s in items if s.started is not None)
    best = 0
    lo = 0
    period = timedelta(seconds=period_s)
    for hi, t in enumerate(starts):
        while starts[lo] <= t - period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def count_by(values: Iterable[Any]) -> Counter[Any]:
    return Counter(values)
