"""The replay state of one run: positions, sequence numbers, limits, replaying, parking.

One object owns every rule that spans a run's ctx calls, so they are decided in one
place: which position the next call takes, which seq the next event gets, whether the
run has hit `max_events` or `execution_timeout`, whether the code is still replaying
history, whether it diverged from history (non-determinism parks the run), and whether
it finished without reaching every recorded position (code was removed).

Pure: no I/O, no clock (`now` is passed in), no event loop. The worker's execution and
an offline replayer drive the same object.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum

from durable.core import decide
from durable.core.events import RUN_POS, Event, EventKind, OpKind
from durable.core.history import History
from durable.errors import NonDeterminismError


class RunAborted(BaseException):
    """Unwinds workflow code when the execution must stop (lease lost, evicted, limit hit).

    A BaseException so that `except Exception` in workflow code cannot swallow it.
    """


class ContinueAsNew(BaseException):
    """Unwinds workflow code after `ctx.continue_as_new(input)`: the run ends `completed`
    and a fresh run of the same workflow and version starts with `input` (encoded).

    A BaseException, like RunAborted, so `except Exception` in workflow code cannot stop it.
    """

    def __init__(self, input: bytes) -> None:
        super().__init__("continue_as_new")
        self.input = input


class Phase(Enum):
    """Where one execution of a run stands. It only ever moves to a later phase.

    RUNNING: executing normally. PARKED: must end as failed (`RunState.failure` says
    why); no ctx operation runs and nothing but the failure is recorded. CLOSING: the
    run was cancelled and this execution runs its cleanup: the first operations that
    history cannot answer raise WorkflowCancelled, later ones (the cleanup code's steps)
    run and are recorded; waits raise WorkflowCancelled (a failure noted while closing
    stops the cleanup's ctx operations). DEAD: this attempt stops
    writing; another worker or a later claim continues from history.
    """

    RUNNING = 0
    PARKED = 1
    CLOSING = 2
    DEAD = 3


class DriveResult(Enum):
    """How one `drive()` of an execution ended."""

    FINISHED = "finished"  # the run ended (completed, failed, cancelled) or was closed
    SUSPENDED = "suspended"  # waiting on timers, signals or children; slot freed
    ABANDONED = "abandoned"  # this attempt stopped; the run continues from history later


class RunState:
    """Replay bookkeeping of one run, shared by its Context and its execution."""

    __slots__ = (
        "_inflight",
        "_last_pos",
        "deadline",
        "execution_timeout",
        "failure",
        "failure_event",
        "halted",
        "history",
        "max_events",
        "next_pos",
        "next_seq",
        "patches",
        "phase",
        "replaying",
        "run_id",
        "sync_ops",
        "workflow",
    )

    def __init__(
        self,
        run_id: str,
        workflow: str,
        history: History,
        *,
        max_events: int | None = None,
        deadline: datetime | None = None,
        execution_timeout: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.history = history
        self.max_events = max_events
        self.deadline = deadline
        self.execution_timeout = execution_timeout
        self.next_seq = history.last_seq + 1
        self.next_pos = 0
        self._last_pos = history.max_pos
        # Replaying while the code has not yet taken the last position history holds.
        self.replaying = self._last_pos >= 0
        self._inflight = 0  # step attempts running, each owed one event under max_events
        # Positions taken by operations that complete synchronously (ctx.now/random/
        # uuid4): with the awaited operations they account for every position taken,
        # so a shortfall at the end means something was created and never awaited.
        self.sync_ops = 0
        self.phase = Phase.RUNNING
        self.failure: str | None = None
        self.failure_event = True
        # True once no ctx operation may run: parked (failure set) or dead.
        self.halted = False
        # Answers of `ctx.patched` in this execution, by patch id (asked once, memoised).
        self.patches: dict[str, bool] = {}

    # -- phases -----------------------------------------------------------------------

    def move(self, phase: Phase, failure: str | None = None, *, event: bool = True) -> bool:
        """The one transition: move to a later phase (earlier ones are ignored).

        Parking records why (`failure`, first reason wins) and whether a run_failed
        event is written (`event`; False for non-determinism, which must leave history
        exactly as it is). Parking a CLOSING run notes the failure, so its operations
        stop, but it stays closing: a cancelled run records nothing more. Returns
        whether the phase changed.
        """
        if phase is Phase.PARKED and self.failure is None and self.phase is not Phase.DEAD:
            self.failure = failure
            self.failure_event = event
            self.halted = True
        if phase.value <= self.phase.value:
            return False
        self.phase = phase
        if phase is Phase.DEAD:
            self.halted = True
        return True

    def park(self, failure: str, *, event: bool = True) -> RunAborted:
        """Park the run as failed; returns the RunAborted to raise into workflow code."""
        self.move(Phase.PARKED, failure, event=event)
        return RunAborted()

    # -- positions and history ----------------------------------------------------------

    def take(self) -> int:
        """The position of a ctx call, taken when it is *called* (program order).

        Replaying ends when the code takes the last position history holds: everything
        it does after that is new (a wait resumed from history included).
        """
        pos = self.next_pos
        self.next_pos = pos + 1
        if pos >= self._last_pos:
            self.replaying = False
        return pos

    def peek(self) -> tuple[Sequence[Event], bool]:
        """What history holds at the next position, without taking it, and whether that
        position lies past the end of history (used by patch checks, see decide.patch)."""
        pos = self.next_pos
        return self.history.peek(pos), pos > self._last_pos

    def lookup(self, pos: int, kind: OpKind, name: str) -> Sequence[Event]:
        """The events history holds for call `pos`, checked against what the code asks.

        A mismatch parks the run (whatever the workflow does with the exception: nothing
        more may reach the history) and raises NonDeterminismError. No events means the
        call runs live, so replaying is over.
        """
        try:
            events = self.history.at(pos, kind, name)
        except NonDeterminismError as exc:
            message = f"run {self.run_id!r} of workflow {self.workflow!r}: {exc}"
            self.move(Phase.PARKED, f"NonDeterminismError: {message}", event=False)
            raise NonDeterminismError(message) from None
        if not events:
            self.replaying = False
        return events

    def unvisited(self) -> str | None:
        """At the workflow's return: positions history holds that the code never reached.

        Non-empty means an operation was removed from the code; the run is parked
        (without a run_failed event) and the reason returned.
        """
        missing = self.history.unvisited_after(self.next_pos)
        if not missing:
            return None
        first = missing[0]
        reason = (
            f"NonDeterminismError: run {self.run_id!r} of workflow {self.workflow!r} "
            f"finished without reaching history position {first.pos} "
            f"({first.kind} {first.name!r}, seq {first.seq})"
        )
        self.move(Phase.PARKED, reason, event=False)
        return reason

    # -- events and limits --------------------------------------------------------------

    def event(
        self, pos: int, kind: EventKind, name: str, payload: bytes | None, now: datetime | None
    ) -> Event:
        """The next event of ctx call `pos`, with the next seq; parks at `max_events`.

        `now` None leaves created_at to the store (the time of the commit writing it)."""
        seq = self.next_seq
        limit = self.max_events
        if limit is not None and seq > limit:
            raise self.park(self._limit_reason(limit))
        self.next_seq = seq + 1
        # `_value_` is a plain attribute; `.value` goes through a slow descriptor.
        return Event(seq, pos, kind._value_, name, payload, now)

    def run_event(self, kind: EventKind, payload: bytes | None, now: datetime) -> Event:
        """A run-level event (completed, failed): never refused, it ends the run."""
        seq = self.next_seq
        self.next_seq = seq + 1
        return Event(seq, RUN_POS, kind._value_, "", payload, now)

    def begin_attempt(self, now: datetime | None) -> None:
        """Before a step body runs: the run must have time left and room for its event.

        Checked *before* the body, so a run at its `max_events` limit does not run one
        more body whose result could never be recorded. Attempts in flight (gather)
        each hold one event of room until `end_attempt`. `now` may be None when the run
        has no deadline (saves a clock read per step).
        """
        if now is not None and self.deadline is not None and now >= self.deadline:
            raise self.park(self._timeout_reason())
        limit = self.max_events
        if limit is not None and self.next_seq + self._inflight > limit:
            raise self.park(self._limit_reason(limit))
        self._inflight += 1

    def end_attempt(self) -> None:
        """A step attempt ended (recorded or not): release its room."""
        self._inflight -= 1

    def check_deadline(self, now: datetime) -> None:
        """Park the run once `execution_timeout` has passed."""
        if self.deadline is not None and now >= self.deadline:
            raise self.park(self._timeout_reason())

    def ready_at(self, waits: Sequence[datetime | None]) -> datetime | None:
        """When a run suspended on `waits` must next run: its earliest wait or deadline."""
        return decide.earliest([*waits, self.deadline])

    def unawaited(self, entered: int) -> int:
        """How many positions were taken by operations never started (never awaited):
        `entered` counts the awaitable operations that started running."""
        return self.next_pos - entered - self.sync_ops

    def unawaited_reason(self, missing: Sequence[int], recorded: dict[int, str]) -> str:
        """The failure of a run that returned with ctx operations never awaited.

        `missing`: their positions; `recorded`: what history holds at other positions
        (kind and name), to point at the code just before each one.
        """
        where = []
        for pos in missing[:3]:
            before = max((p for p in recorded if p < pos), default=None)
            after = "" if before is None else f", after {recorded[before]} (position {before})"
            where.append(f"position {pos} (ctx call #{pos + 1}{after})")
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return (
            f"UnawaitedOperation: run {self.run_id!r} of workflow {self.workflow!r} returned "
            f"while {len(missing)} ctx operation(s) it created were never awaited: "
            f"{'; '.join(where)}{more}. Add `await` before ctx.step(...), ctx.sleep(...), "
            "ctx.wait_for_signal(...) and the other ctx operations (or gather them)"
        )

    def _limit_reason(self, limit: int) -> str:
        return f"max_events exceeded: the run reached its limit of {limit} events"

    def _timeout_reason(self) -> str:
        return f"execution_timeout exceeded: the run passed its limit of {self.execution_timeout}s"


__all__ = ["ContinueAsNew", "DriveResult", "Phase", "RunAborted", "RunState"]
