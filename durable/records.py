"""The records the public API returns about runs and hooks, and their validation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from durable import codec
from durable.core.vocabulary import RunStatus
from durable.store import RunRecord

OUTSIDE_POS = -2
"""`Event.pos` of a custom event emitted from outside the run (no ctx call owns it)."""


class Event(msgspec.Struct, frozen=True):
    """One entry of a run's history, payload decoded. Kinds: see docs/concepts.md."""

    seq: int
    kind: str
    name: str
    payload: Any
    created_at: datetime | None
    pos: int = -1


class RunInfo(msgspec.Struct, frozen=True):
    """What `get_run` and `list_runs` report about a run."""

    run_id: str
    workflow: str
    version: str
    status: RunStatus
    input: Any
    output: Any
    error: str | None
    pending: list[dict[str, Any]]
    history: list[Event]
    parent_run_id: str | None
    created_at: datetime
    updated_at: datetime
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    continued_as: str | None = None
    """The run this one continued as (`ctx.continue_as_new`), if it did."""
    continued_from: str | None = None
    """The run this one continues, if it was started by `continue_as_new`."""
    forked_from: str | None = None
    """The run this one was forked from (`Runtime.fork`), if it was."""
    traceback: str | None = None  # of a run whose code raised (get_run only)


class HookInfo(msgspec.Struct, frozen=True):
    """What `get_hook` reports: `used_at` is None until the hook is executed."""

    token: str
    run_id: str
    name: str
    metadata: Any
    created_at: datetime
    used_at: datetime | None


_STATUS = {s.value: s for s in RunStatus}
_decode = codec.decode


def run_info(rec: RunRecord, history: list[Event]) -> RunInfo:
    """The RunInfo of a stored run. Builds every run of a list page (the HTTP API's
    busiest path), so positional (fields in RunInfo's order, which
    tests/core/test_records.py checks value by value) and without an enum call: about
    half the CPU of keywords."""
    status = rec.status
    return RunInfo(
        rec.run_id,
        rec.workflow,
        rec.version,
        _STATUS.get(status) or RunStatus(status),
        _decode(rec.input),
        _decode(rec.output),
        rec.error,
        list(_decode(rec.pending) or []) if status == RunStatus.SUSPENDED else [],
        history,
        rec.parent_run_id,
        rec.created_at,
        rec.updated_at,
        dict(rec.tags),
        rec.started_at,
        rec.finished_at,
        rec.continued_as,
        rec.continued_from,
        rec.forked_from,
    )
