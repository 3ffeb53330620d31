"""The store protocol every backend implements, and the records that cross it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from durable.core.events import Event
from durable.core.vocabulary import TERMINAL as TERMINAL


class NewRun(msgspec.Struct, frozen=True):
    """A run to create; `ready_at` is when it may first be claimed."""

    run_id: str
    workflow: str
    version: str
    input: bytes
    created_at: datetime
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    deadline_s: float | None = None
    owner: str | None = None
    """Insert the run already leased to this worker (local dispatch)."""
    lease_s: float = 30.0


class RunRecord(msgspec.Struct, frozen=True):
    """A run row as stored."""

    run_id: str
    workflow: str
    version: str
    status: str
    input: bytes | None
    output: bytes | None
    error: str | None
    parent_run_id: str | None
    pending: bytes | None
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None = None


class ClaimedRun(msgspec.Struct, frozen=True):
    """A run this worker now holds: its fence guards every write it makes."""

    run_id: str
    workflow: str
    version: str
    input: bytes | None
    fence: int
    wakeups: int
    parent_run_id: str | None
    started_at: datetime
    deadline: datetime | None
    fresh: bool = False
    """True when no worker ever held the run before: it has no history to load."""


class EventRow(msgspec.Struct, frozen=True):
    run_id: str
    fence: int
    event: Event


class Finish(msgspec.Struct, frozen=True):
    """A run's terminal write: status, output/error and its last event, in one commit."""

    run_id: str
    fence: int
    status: str
    output: bytes | None
    error: str | None
    event: Event | None


class Suspend(msgspec.Struct, frozen=True):
    """Release a run until `ready_at` (None: until something wakes it)."""

    run_id: str
    fence: int
    ready_at: datetime | None
    waiting_on: list[str]
    pending: bytes
    seen_wakeups: int


class Extend(msgspec.Struct, frozen=True):
    run_id: str
    fence: int


class Batch(msgspec.Struct):
    """Everything one group commit writes in a single transaction."""

    now: datetime
    events: list[EventRow] = msgspec.field(default_factory=list)
    finishes: list[Finish] = msgspec.field(default_factory=list)
    suspends: list[Suspend] = msgspec.field(default_factory=list)
    extends: list[Extend] = msgspec.field(default_factory=list)
    lease_s: float = 30.0


class BatchResult(msgspec.Struct):
    """Which runs' writes were refused (fence lost or run closed) and which suspends woke.

    `failed` maps a run whose writes the database can never accept (a data error, a
    program limit, too large for one commit) to the error the committer recorded when it
    failed that run in their place; such a run is also in `rejected` and `closed`.
    """

    rejected: set[str]
    woken: set[str]
    closed: set[str]
    failed: dict[str, str] = msgspec.field(default_factory=dict)


class ChildOutcome(msgspec.Struct, frozen=True):
    status: str
    output: bytes | None
    error: str | None


class Store(Protocol):
    """What the executor and the runtime need from persistence."""

    async def migrate(self) -> None: ...

    async def close(self) -> None: ...

    async def create_run(self, run: NewRun, now: datetime) -> tuple[str, bool]: ...

    async def create_runs(
        self, runs: Sequence[NewRun], now: datetime
    ) -> list[tuple[str, bool]]: ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def load_events(self, run_id: str) -> list[Event]: ...

    async def list_runs(
        self,
        *,
        workflow: str | None,
        status: str | None,
        limit: int,
        parent_run_id: str | None = None,
    ) -> list[RunRecord]: ...

    async def claim(
        self,
        *,
        owner: str,
        keys: Sequence[tuple[str, str]],
        limit: int,
        now: datetime,
        lease_s: float,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedRun]: ...

    async def commit(self, batch: Batch) -> BatchResult: ...

    async def release(self, owner: str, run_ids: Sequence[str], now: datetime) -> None: ...

    async def take_message(
        self,
        run_id: str,
        fence: int,
        kind: str,
        name: str,
        make_event: Callable[[bytes | None], Event],
        now: datetime,
    ) -> tuple[bool, bytes | None]: ...

    async def start_child(
        self, run_id: str, fence: int, event: Event, child: NewRun, now: datetime
    ) -> str: ...

    async def child_outcome(self, run_id: str) -> ChildOutcome | None: ...

    async def create_hook(
        self, run_id: str, fence: int, event: Event, token: str, name: str, now: datetime
    ) -> None: ...

    async def signal(self, run_id: str, name: str, payload: bytes, now: datetime) -> None: ...

    async def execute_hook(self, token: str, payload: bytes, now: datetime) -> str: ...

    async def cancel(self, run_id: str, now: datetime) -> list[str]: ...

    async def purge(self, before: datetime, limit: int) -> int: ...

    async def next_ready_at(self, keys: Sequence[tuple[str, str]]) -> datetime | None: ...
