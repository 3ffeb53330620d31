"""What `Context` needs from the execution behind it: the run's I/O, as a Protocol.

`Context` asks `durable.core` what each ctx call must do and performs the I/O the
answer asks for through these members. The worker's `RunExecution` implements them;
an offline replayer or a test double can implement them too (and, for a pure replay,
most of them may simply raise: a replay that stays inside history only needs `defn`,
`state`, `op`, `now`, `record` and `telemetry`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from durable.core.events import Event
    from durable.core.state import RunState
    from durable.store.base import ChildOutcome
    from durable.telemetry import RunTelemetry
    from durable.workflow import WorkflowDef


class RunIO(Protocol):
    """The members of an execution that `Context` uses (see docs/concepts.md)."""

    @property
    def run_id(self) -> str: ...
    @property
    def parent_run_id(self) -> str | None: ...
    @property
    def defn(self) -> WorkflowDef: ...
    @property
    def state(self) -> RunState:
        """Positions, seqs, limits, replaying and parking (durable.core.state)."""
        ...

    @property
    def telemetry(self) -> RunTelemetry: ...

    def now(self) -> datetime:
        """The clock every live decision gets its `now` from."""
        ...

    def op(self) -> AbstractContextManager[None]:
        """Scope of one ctx operation; raises RunAborted once the run is parked/dead."""
        ...

    def record(self, event: Event) -> None:
        """Buffer an event; it becomes durable with the run's next write."""
        ...

    def defer(self, event: Event) -> bool:
        """Keep a step's record for the run's next commit, if nothing else of the run
        is running; False: the caller appends it instead."""
        ...

    @property
    def unsettled(self) -> bool:
        """Whether records kept back by `defer` may not be durable yet."""
        ...

    async def settle(self) -> None:
        """Make the records kept back by `defer` durable (before a step body runs)."""
        ...

    async def append(self, event: Event) -> None:
        """Write the buffer and `event` durably before returning (a step's result)."""
        ...

    async def wait_until(self, pos: int, kind: str, name: str, until: datetime) -> None:
        """Return once `until` has passed; the run may suspend meanwhile."""
        ...

    async def park(
        self, pos: int, kind: str, name: str, until: datetime | None, key: str | None
    ) -> None:
        """Wait until woken (a delivery on `key`, or `until`); the run may suspend."""
        ...

    async def take_message(
        self, kind: str, name: str, make_event: Callable[[bytes | None], Event]
    ) -> tuple[bool, bytes | None]:
        """Take one buffered signal/hook delivery and record `make_event(payload)` with it."""
        ...

    async def create_hook(
        self, event: Event, token: str, name: str, metadata: bytes | None = None
    ) -> None: ...

    async def start_child(
        self, event: Event, defn: WorkflowDef, child_id: str, data: bytes
    ) -> None: ...

    async def child_outcome(self, run_id: str) -> ChildOutcome | None:
        """The child's status, output and error (None: unknown run)."""
        ...

    def resolve_workflow(self, workflow: WorkflowDef | str) -> WorkflowDef: ...

    def new_run_id(self) -> str: ...

    def check_payload(self, data: bytes, what: str, name: str | None = None) -> None:
        """Raise PayloadTooLarge when `data` exceeds the runtime's payload limit; the
        message names `what` and `name` (see `durable.codec.label`)."""
        ...

    def ensure_writable(self) -> None:
        """Raise unless this execution may still write (RunAborted, WorkflowCancelled)."""
        ...

    def cancel_point(self) -> None:
        """While running a cancelled run's cleanup: raise WorkflowCancelled where the run
        had stopped (the first operations history cannot answer), return for the
        cleanup code's own operations after that."""
        ...

    def cancellation_delivered(self) -> None:
        """A user cancel reached a step: let cleanup code continue (uncancel the task)."""
        ...


__all__ = ["RunIO"]
