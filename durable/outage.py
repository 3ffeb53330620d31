"""Logging a database outage once: one WARNING when a component starts failing, one
INFO when it works again, and the backoff between its attempts meanwhile.

Every background loop (claims, heartbeats, the scheduler, the listener) retries while
PostgreSQL is down. Logging each failed attempt buried the one useful line under a
traceback per second; each loop now owns an `Outage` and reports through it.
"""

from __future__ import annotations

import logging
import time


class Outage:
    """The outage state of one component; `failed`/`recovered` log only on transitions."""

    __slots__ = ("_delay", "_first", "_log", "_max", "_since", "component", "failures")

    def __init__(
        self, component: str, log: logging.Logger, *, first: float = 0.05, maximum: float = 5.0
    ) -> None:
        self.component = component
        self._log = log
        self._first = first
        self._max = maximum
        self._delay = first
        self._since: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> float:
        """Note a failed attempt; returns how long to wait before the next one.

        The first failure of an outage logs a WARNING (with the error, no traceback);
        later ones log at DEBUG. The delay doubles up to the maximum.
        """
        self.failures += 1
        if self._since is None:
            self._since = time.monotonic()
            self._delay = self._first
            self._log.warning(
                "%s: database unavailable (%s: %s); retrying with backoff up to %.0fs, "
                "logging again when it is back",
                self.component,
                type(exc).__name__,
                exc,
                self._max,
            )
        else:
            self._log.debug("%s: still failing: %s: %s", self.component, type(exc).__name__, exc)
        delay = self._delay
        self._delay = min(self._delay * 2, self._max)
        return delay

    def recovered(self) -> None:
        """Note a successful attempt; logs one INFO if an outage just ended."""
        if self._since is None:
            return
        took = time.monotonic() - self._since
        self._log.info(
            "%s: database reachable again after %.1fs (%d failed attempt(s))",
            self.component,
            took,
            self.failures,
        )
        self._since = None
        self.failures = 0
        self._delay = self._first
