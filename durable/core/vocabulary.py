"""The engine's shared words, defined once: run statuses, wake keys and notices.

Python code imports these names; the SQL side (migrations, store queries) spells the
same strings, and `tests/core/test_vocabulary.py` checks every SQL file against this
module so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run stands. `pending`: never started; `running`: held by a worker;
    `suspended`: started and waiting (or due); the last three are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[str] = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
"""Statuses a run never leaves: nothing more is recorded for it."""

# -- wake keys ------------------------------------------------------------------------
# A suspended run lists in `runs.waiting_on` the keys whose delivery wakes it. A
# delivery (a signal, a hook execution, a child's end) wakes every run waiting on its
# key in the same transaction that records it, so no wake-up can be lost in between.

SIGNAL_PREFIX = "s:"
HOOK_PREFIX = "h:"
CHILD_PREFIX = "c:"


def signal_key(name: str) -> str:
    """The wake key of a run waiting for the signal `name`."""
    return SIGNAL_PREFIX + name


def hook_key(token: str) -> str:
    """The wake key of a run waiting on the hook `token`."""
    return HOOK_PREFIX + token


def child_key(run_id: str) -> str:
    """The wake key of a parent waiting for its child `run_id` to end."""
    return CHILD_PREFIX + run_id


# -- notices --------------------------------------------------------------------------
# Payloads sent on the schema's notification channel (NOTIFY in Postgres, callbacks in
# the memory store). Finished run ids are batched into one notice, separated by the
# ASCII unit separator, which run ids may not contain.

NOTICE_WAKE = "w"
"""Something became runnable: idle workers should try to claim."""
NOTICE_DONE_PREFIX = "d:"
"""Runs ended (ids follow): result() waiters re-read them."""
NOTICE_CANCELLED_PREFIX = "x:"
"""A run was cancelled (id follows): the worker executing it stops it."""
NOTICE_ID_SEPARATOR = "\x1f"


def notice_done(run_ids: Iterable[str]) -> str:
    """One notice that the given runs ended."""
    return NOTICE_DONE_PREFIX + NOTICE_ID_SEPARATOR.join(run_ids)


def notice_cancelled(run_id: str) -> str:
    """A notice that `run_id` was cancelled."""
    return NOTICE_CANCELLED_PREFIX + run_id


class Notice(StrEnum):
    """The kind of a decoded notice."""

    WAKE = "wake"
    DONE = "done"
    CANCELLED = "cancelled"


def parse_notice(payload: str) -> tuple[Notice, list[str]]:
    """Decode a notice payload: its kind and the run ids it names (none for wake)."""
    if payload.startswith(NOTICE_DONE_PREFIX):
        return Notice.DONE, payload[len(NOTICE_DONE_PREFIX) :].split(NOTICE_ID_SEPARATOR)
    if payload.startswith(NOTICE_CANCELLED_PREFIX):
        return Notice.CANCELLED, [payload[len(NOTICE_CANCELLED_PREFIX) :]]
    return Notice.WAKE, []


def iter_statuses() -> Iterator[str]:
    """Every status value, for CLI choices and validation messages."""
    return (s.value for s in RunStatus)


__all__ = [
    "CHILD_PREFIX",
    "HOOK_PREFIX",
    "NOTICE_CANCELLED_PREFIX",
    "NOTICE_DONE_PREFIX",
    "NOTICE_ID_SEPARATOR",
    "NOTICE_WAKE",
    "SIGNAL_PREFIX",
    "TERMINAL",
    "Notice",
    "RunStatus",
    "child_key",
    "hook_key",
    "notice_cancelled",
    "notice_done",
    "parse_notice",
    "signal_key",
]
