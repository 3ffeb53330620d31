"""The one source of wall-clock time, so tests and deadlines never mix two clocks."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """Wall clock in aware UTC. Subclass to control time in tests."""

    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = Clock()
