"""Logging a database outage once: one WARNING when a component starts failing, one
INFO when it works again, and the backoff between its attempts meanwhile.

Every background loop (claims, heartbeats, the scheduler, the listener) retries while
PostgreSQL is down. Logging each failed attempt buried the one useful line under a
traceback per second; each loop now owns an `Outage` and reports through it.

`transient_error` is the one rule for which database errors are worth another attempt;
`retry_transient` applies it to one call (what a caller waiting for a run, such as
`RunHandle.result()`, does until its own timeout).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("durable.outage")


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


# SQLSTATE classes and codes of errors a later attempt can succeed after: 08 connection
# exception (a killed backend, a restart), 53 insufficient resources (too many
# connections), 57 operator intervention (admin or crash shutdown, "the database system
# is starting up", a cancelled statement), 58 system error (I/O), and the two
# transaction rollbacks PostgreSQL asks the client to retry (serialization, deadlock).
_TRANSIENT_CLASSES = ("08", "53", "57", "58")
_TRANSIENT_STATES = ("40001", "40P01")
# The driver's client-side connection errors carry no SQLSTATE: asyncpg's InterfaceError
# ("connection is closed", "another operation is in progress") and InternalClientError
# ("cannot switch to state ..."). Matched by name so this leaf imports no driver.
_DRIVER_ERRORS = frozenset({"InterfaceError", "InternalClientError"})


def transient_error(exc: BaseException) -> bool:
    """True for a database error that the same call may not hit again: the connection
    was lost or refused, the server is restarting or short of resources, or PostgreSQL
    aborted the transaction so that another could go on.

    Errors of the data sent (see `durable.batching.permanent_error`), errors naming a
    run that does not exist and programming errors are not transient.
    """
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state:
        return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES
    if isinstance(exc, OSError):  # refused, reset, a connect timeout
        return True
    if isinstance(exc, ValueError | TypeError):  # the driver could not encode an argument
        return False
    return any(
        c.__name__ in _DRIVER_ERRORS and c.__module__.startswith("asyncpg")
        for c in type(exc).__mro__
    )


async def retry_transient(
    call: Callable[[], Awaitable[T]], *, first: float = 0.05, maximum: float = 1.0
) -> T:
    """`await call()`, again after each transient error (`transient_error`), with a
    doubling, jittered pause between attempts; any other error is raised at once.

    Unbounded on its own: the caller bounds it with its own timeout (`result()` does).
    """
    delay = first
    while True:
        try:
            return await call()
        except Exception as exc:
            if not transient_error(exc):
                raise
            log.debug("retrying after a transient database error: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, maximum)
