"""Offline replay: check that workflow code still fits recorded histories, running no step.

A deploy that changes a workflow's ctx calls breaks the runs already in flight: their
histories no longer match the code (`NonDeterminismError`, the run is parked). This
module re-drives the current code against recorded histories (a `RunInfo`, or the JSON
written by `durable runs export` / `Runtime.export_run`) so such a change is caught in
CI, before it reaches a worker. Nothing is written and no step function is ever called:
every ctx call is answered from history, and the check stops where history ends.

The export format (``FORMAT``) is versioned JSON::

    {
        "format": "durable-run/1",
        "run": {
            "run_id",
            "workflow",
            "version",
            "status",
            "error",
            "parent_run_id",
            "created_at",
            "updated_at",
            "pending",
            "input",
            "output",
            "input_bytes",
            "output_bytes",
        },
        "events": [{"seq", "pos", "kind", "name", "payload", "created_at"}, ...],
    }

`input`/`output` are the decoded values, for people; `input_bytes`, `output_bytes` and
each event's `payload` are the stored bytes in hex (or null), the authority, so a
history round-trips byte for byte whatever the payloads hold.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Callable, Coroutine, Generator, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import msgspec

from durable import codec
from durable.context import Context
from durable.core.events import OP_OF_EVENT, RUN_POS, Event, EventKind, OpKind
from durable.core.history import History
from durable.core.state import RunState
from durable.errors import NonDeterminismError, ValidationError, WorkflowCancelled, WorkflowNotFound
from durable.telemetry import RunTelemetry
from durable.workflow import Registry, WorkflowDef

if TYPE_CHECKING:
    from durable.runtime import RunInfo
    from durable.store.base import RunRecord

T = TypeVar("T")

FORMAT = "durable-run/1"

# Failures that stop a run from outside its code: after them, code that asks for more
# is not a divergence (the limit cut it off there).
_LIMIT_ERRORS = ("max_events exceeded", "execution_timeout exceeded")


# -- the export format -------------------------------------------------------------------


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def _unhex(text: Any, what: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValidationError(f"invalid export: {what} must be a hex string or null")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValidationError(f"invalid export: {what} is not valid hex") from None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def export_document(rec: RunRecord, events: Sequence[Event]) -> dict[str, Any]:
    """A run and its full history in the export format (see the module docstring)."""
    return {
        "format": FORMAT,
        "run": {
            "run_id": rec.run_id,
            "workflow": rec.workflow,
            "version": rec.version,
            "status": rec.status,
            "error": rec.error,
            "parent_run_id": rec.parent_run_id,
            "created_at": _iso(rec.created_at),
            "updated_at": _iso(rec.updated_at),
            "pending": msgspec.to_builtins(codec.decode(rec.pending) or [])
            if rec.status == "suspended"
            else [],
            "input": msgspec.to_builtins(codec.decode(rec.input)),
            "output": msgspec.to_builtins(codec.decode(rec.output)),
            "input_bytes": _hex(rec.input),
            "output_bytes": _hex(rec.output),
        },
        "events": [
            {
                "seq": e.seq,
                "pos": e.pos,
                "kind": e.kind,
                "name": e.name,
                "payload": _hex(e.payload),
                "created_at": _iso(e.created_at),
            }
            for e in events
        ],
    }


class Recorded(msgspec.Struct, frozen=True):
    """A recorded run as replay needs it: identity, raw input and raw events."""

    run_id: str
    workflow: str
    version: str
    status: str
    error: str | None
    parent_run_id: str | None
    input: bytes | None
    events: list[Event]


def _event_from_json(raw: Any, i: int) -> Event:
    if not isinstance(raw, dict):
        raise ValidationError(f"invalid export: event {i} is not an object")
    try:
        created = raw.get("created_at")
        return Event(
            seq=int(raw["seq"]),
            pos=int(raw["pos"]),
            kind=str(raw["kind"]),
            name=str(raw["name"]),
            payload=_unhex(raw.get("payload"), f"payload of event {i}"),
            created_at=None if created is None else datetime.fromisoformat(created),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError(f"invalid export: event {i}: {type(exc).__name__}: {exc}") from None


def load_document(doc: Any) -> Recorded:
    """Read an export document (a dict as parsed from JSON). Raises ValidationError."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValidationError(f"not a durable run export: format {found!r}, expected {FORMAT!r}")
    run, events = doc.get("run"), doc.get("events")
    if not isinstance(run, dict) or not isinstance(events, list):
        raise ValidationError("invalid export: needs a 'run' object and an 'events' list")
    try:
        return Recorded(
            run_id=str(run["run_id"]),
            workflow=str(run["workflow"]),
            version=str(run["version"]),
            status=str(run.get("status", "")),
            error=run.get("error"),
            parent_run_id=run.get("parent_run_id"),
            input=_unhex(run.get("input_bytes"), "run input_bytes"),
            events=[_event_from_json(e, i) for i, e in enumerate(events)],
        )
    except KeyError as exc:
        raise ValidationError(f"invalid export: the run has no {exc.args[0]!r}") from None


def load_file(path: str | Path) -> Recorded:
    """Read a file written by `durable runs export`."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: not JSON: {exc}") from None
    try:
        return load_document(doc)
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc}") from None


def _from_info(info: RunInfo) -> Recorded:
    # RunInfo holds decoded payloads: encoding them again gives the stored bytes back
    # (one codec, deterministic for the same value), engine metadata included. An
    # encoded null comes back as no payload: both decode to None, so replay is unmoved.
    return Recorded(
        run_id=info.run_id,
        workflow=info.workflow,
        version=info.version,
        status=str(info.status),
        error=info.error,
        parent_run_id=info.parent_run_id,
        input=codec.encode(info.input),
        events=[
            Event(
                e.seq,
                e.pos,
                e.kind,
                e.name,
                None if e.payload is None else codec.encode(e.payload),
                e.created_at,
            )
            for e in info.history
        ],
    )


def to_recorded(history: Any) -> Recorded:
    """Accept a RunInfo (with history), an export dict, its JSON text or a file path."""
    from durable.runtime import RunInfo

    if isinstance(history, Recorded):
        return history
    if isinstance(history, RunInfo):
        return _from_info(history)
    if isinstance(history, dict):
        return load_document(history)
    if isinstance(history, Path):
        return load_file(history)
    if isinstance(history, str | bytes):
        text = history.decode() if isinstance(history, bytes) else history
        if text.lstrip().startswith("{"):
            try:
                return load_document(json.loads(text))
            except json.JSONDecodeError as exc:
                raise ValidationError(f"not JSON: {exc}") from None
        return load_file(text)
    raise TypeError(
        f"expected a RunInfo, an export document, its JSON text or a file path, got {history!r}"
    )


# -- the divergence report ------------------------------------------------------------


class ReplayDivergence(NonDeterminismError):
    """The code no longer fits the recorded history. A `NonDeterminismError` that also
    carries the pieces `durable replay` lists: run, position, what the code asked for,
    what the history holds."""

    def __init__(
        self, *, run_id: str, workflow: str, position: int, asked: str, recorded: str
    ) -> None:
        super().__init__(
            f"run {run_id!r} of workflow {workflow!r}: at position {position} the workflow "
            f"code asked for {asked} but the history holds {recorded}"
        )
        self.run_id = run_id
        self.workflow = workflow
        self.position = position
        self.asked = asked
        self.recorded = recorded


def _describe(event: Event) -> str:
    if event.pos == RUN_POS:
        return f"{event.kind} (event seq {event.seq})"
    op = OP_NAMES.get(event.kind, event.kind)
    return f"{op} {event.name!r} (event seq {event.seq}, {event.kind})"


OP_NAMES: dict[str, str] = {kind: op.value for kind, op in OP_OF_EVENT.items()}
"""The ctx operation each event kind belongs to, as misfit reports name it."""


# -- the coupling to the engine ------------------------------------------------------------


class _Stop(BaseException):
    """Unwinds workflow code where replay ends (history exhausted, an open wait).

    A BaseException, as the engine's RunAborted, so `except Exception` cannot swallow it.
    """


class _ReplayState(RunState):
    """The engine's RunState, with the two points where a live run would act turned
    into the end of the replay.

    Positions, seqs and history lookups are RunState's own (the same rules the worker
    replays by), except that the run stays `replaying` throughout (`ctx.logger` is
    silent). What differs is where history runs out: where it holds nothing at a
    position (`lookup` finds no event) the code would go live, and where a step attempt
    is about to start (`begin_attempt`, e.g. a retry recorded without a due time) its
    body would run. Replay decides there whether the code fits, and stops.
    """

    def __init__(self, x: ReplayExecution, history: History) -> None:
        super().__init__(x.run_id, x.defn.name, history)
        self._replay = x
        self.replaying = True

    def take(self) -> int:
        # Offline the code never runs live, so it never stops replaying (a worker's
        # replay ends at the last recorded position, and its logger speaks from there).
        pos = super().take()
        self.replaying = True
        return pos

    def lookup(self, pos: int, kind: OpKind, name: str) -> Sequence[Event]:
        x = self._replay
        asked = f"{kind.value} {name!r}"
        x.asked = (pos, asked)
        try:
            events = super().lookup(pos, kind, name)
        except NonDeterminismError:
            first = next(e for e in self.history.events if e.pos == pos)
            raise x.diverge(pos, asked, _describe(first)) from None
        if not events:
            x.going_live(pos, asked)
        return events

    def begin_attempt(self, now: datetime | None) -> None:
        # Never reached through a live position (lookup stopped there): a recorded
        # retry that is due at once. The run was about to run the body: it fits here.
        self._replay.stop(self._replay.asked[0])


class _Scope:
    def __init__(self, x: ReplayExecution) -> None:
        self._x = x

    def __enter__(self) -> None:
        # Only a divergence ends every branch. Where one branch of a gather stopped (at
        # the end of history), its siblings hold positions of their own, still checked.
        if self._x.divergence is not None:
            raise _Stop
        task = asyncio.current_task()
        if task is not None:
            self._x.tasks.add(task)

    def __exit__(self, *_exc: object) -> None:
        return None


class ReplayExecution:
    """Implements `durable.run_io.RunIO` under `Context`, offline: the whole coupling of
    offline replay to the engine.

    `Context` asks `durable.core.decide` what each ctx call does, from the events its
    `RunState` (here `_ReplayState`) finds in history, exactly as in a worker. Every
    path that would do I/O, record something or run a step body ends the replay here
    instead (`_Stop`), after deciding whether reaching it fits the history: going live
    at the end of history fits unless the run had finished by its code; an open wait
    (timer, signal, hook, child, retry) fits.
    """

    def __init__(self, defn: WorkflowDef, rec: Recorded, registry: Registry) -> None:
        self.defn = defn
        self.rec = rec
        self.run_id = rec.run_id
        self.parent_run_id = rec.parent_run_id
        self.registry = registry
        self.telemetry = RunTelemetry(defn.name, defn.version, rec.run_id)
        self.stopped: int | None = None  # position where replay ended, if it did
        self.divergence: ReplayDivergence | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.asked: tuple[int, str] = (0, "")  # the last position looked up, and what
        history = History(rec.events)
        terminal = history.terminal
        self.finished_by_code = terminal is not None and (
            terminal.kind == EventKind.RUN_COMPLETED
            or terminal.kind == EventKind.RUN_CONTINUED
            or (
                terminal.kind == EventKind.RUN_FAILED
                and not str(codec.decode(terminal.payload) or "").startswith(_LIMIT_ERRORS)
            )
        )
        # Cancelled with its cleanup run: replay delivers the cancellation where it stopped.
        self.cleanup_owed = any(e.kind == EventKind.CLEANUP_FINISHED for e in history.events)
        self.state: RunState = _ReplayState(self, history)
        self.ctx = Context(self)

    @property
    def history(self) -> History:
        return self.state.history

    @property
    def next_position(self) -> int:
        """The position the code's next ctx call would take."""
        return self.state.next_pos

    # -- decisions -------------------------------------------------------------------

    def diverge(self, position: int, asked: str, recorded: str) -> ReplayDivergence:
        """Note the first divergence (later ones are consequences) and return it."""
        if self.divergence is None:
            self.divergence = ReplayDivergence(
                run_id=self.run_id,
                workflow=self.defn.name,
                position=position,
                asked=asked,
                recorded=recorded,
            )
        return self.divergence

    def going_live(self, pos: int, asked: str) -> NoReturn:
        """The code asks past the recorded history: fits unless the run had finished."""
        if self.finished_by_code:
            terminal = self.history.terminal
            assert terminal is not None
            self.diverge(pos, asked, f"nothing more: the run ended ({terminal.kind})")
        self.stop(pos)

    def stop(self, pos: int) -> NoReturn:
        """Replay ends at `pos` (history ends or waits there): the code fits so far.

        In a cancelled run whose cleanup was recorded, the first such point is where a
        worker delivered WorkflowCancelled: replay does the same and goes on through
        the cleanup's recorded steps (docs/upgrades.md).
        """
        if self.cleanup_owed:
            self.cleanup_owed = False
            raise WorkflowCancelled(f"run {self.run_id!r} was cancelled", run_id=self.run_id)
        if self.stopped is None:
            self.stopped = pos
        raise _Stop

    # -- RunIO ------------------------------------------------------------------------

    def op(self) -> _Scope:
        return _Scope(self)

    def now(self) -> datetime:
        return datetime.now(UTC)

    # A wait started in history and never resolved there: the run was (or is) waiting
    # here, so the code fits up to this point.

    async def wait_until(self, pos: int, kind: str, name: str, until: datetime) -> NoReturn:
        self.stop(pos)

    async def park(
        self, pos: int, kind: str, name: str, until: datetime | None, key: str | None
    ) -> NoReturn:
        self.stop(pos)

    async def take_message(
        self, kind: str, name: str, make_event: Callable[[bytes | None], Event]
    ) -> NoReturn:
        self.stop(self.asked[0])

    async def child_outcome(self, run_id: str) -> NoReturn:
        self.stop(self.asked[0])

    # Everything that would write: unreachable, since `_ReplayState.lookup` stops where
    # history holds nothing. Kept as stops so that a change in Context cannot make a
    # replay write or run anything.

    def record(self, event: Event) -> NoReturn:
        raise _Stop

    async def append(self, event: Event) -> NoReturn:
        raise _Stop

    def defer(self, event: Event) -> NoReturn:
        raise _Stop

    @property
    def unsettled(self) -> bool:
        return False  # nothing is ever kept back: replay writes nothing

    async def settle(self) -> NoReturn:
        raise _Stop

    async def create_hook(
        self, event: Event, token: str, name: str, metadata: bytes | None = None
    ) -> NoReturn:
        raise _Stop

    async def start_child(
        self, event: Event, defn: WorkflowDef, child_id: str, data: bytes
    ) -> NoReturn:
        raise _Stop

    def new_run_id(self) -> NoReturn:
        raise _Stop

    def check_payload(self, data: bytes, what: str, name: str | None = None) -> NoReturn:
        raise _Stop

    def cancellation_delivered(self) -> None:
        return None

    def ensure_writable(self) -> None:
        return None  # offline, continue_as_new then stops at check_payload: it fits

    def cancel_point(self) -> None:
        return None  # the cancellation is delivered by `stop`, where replay meets it

    def resolve_workflow(self, workflow: WorkflowDef | str) -> WorkflowDef:
        if isinstance(workflow, WorkflowDef):
            return workflow
        found = [d for d in self.registry.all() if d.name == workflow]
        if found:
            return self.registry.get(workflow)
        # Offline, a child named by string needs no code: only its name is checked.
        return WorkflowDef(_no_code, name=workflow)


async def _no_code(ctx: Context, input: Any) -> Any:  # pragma: no cover - never run
    raise RuntimeError("offline replay never runs child workflows")


# -- driving ------------------------------------------------------------------------------


class ReplayResult:
    """What a replay that fits found. Awaiting it is allowed (and returns it)."""

    def __init__(self, run_id: str, positions: int, stopped_at: int | None) -> None:
        self.run_id = run_id
        self.positions = positions
        """How many ctx calls the code made that history answered."""
        self.stopped_at = stopped_at
        """Where replay stopped because history ends (or waits) there; None if it ran out."""

    def __repr__(self) -> str:
        return (
            f"<ReplayResult {self.run_id!r} positions={self.positions}"
            f" stopped_at={self.stopped_at}>"
        )

    def __await__(self) -> Generator[Any, None, ReplayResult]:
        async def done() -> ReplayResult:
            return self

        return done().__await__()


async def _drive(defn: WorkflowDef, rec: Recorded, registry: Registry, timeout: float) -> Any:
    x = ReplayExecution(defn, rec, registry)
    value = defn.convert_input(codec.decode(rec.input))

    async def run() -> Any:
        return await defn.fn(x.ctx, value)

    main: asyncio.Task[Any] = asyncio.create_task(run())
    x.tasks.add(main)
    done, _ = await asyncio.wait({main}, timeout=timeout)
    # Branches of gather/parallel may still be running after the main task ended (a
    # sibling stopped): let them reach their own positions, which must fit too.
    rest = {t for t in x.tasks if not t.done()}
    if done and rest:
        await asyncio.wait(rest, timeout=timeout)
    timed_out = not main.done()
    left = {t for t in x.tasks if not t.done()}
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=1.0)
    for task in x.tasks:  # mark every outcome as seen: they are judged below
        if task.done() and not task.cancelled():
            task.exception()
    if timed_out:
        raise TimeoutError(
            f"replay of run {rec.run_id!r} did not finish within {timeout:g}s: the workflow "
            "awaits something other than ctx calls"
        )
    if x.divergence is not None:
        raise x.divergence
    exc = None if main.cancelled() else main.exception()
    if isinstance(exc, _Stop) or x.stopped is not None:
        return ReplayResult(rec.run_id, x.next_position, x.stopped)
    terminal = x.history.terminal
    if exc is not None:
        if terminal is not None and terminal.kind == EventKind.RUN_COMPLETED:
            raise x.diverge(
                x.next_position,
                f"an end by {type(exc).__name__}: {exc}",
                f"the run completed ({_describe(terminal)})",
            )
        return ReplayResult(rec.run_id, x.next_position, None)
    missing = x.history.unvisited_after(x.next_position)
    if missing:
        first = min(missing, key=lambda e: e.seq)
        raise x.diverge(first.pos, "nothing more (the workflow returned)", _describe(first))
    return ReplayResult(rec.run_id, x.next_position, None)


def _run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    # A private loop in a helper thread: replay is pure CPU, and workflow coroutines
    # touch no loop-bound object of the caller's.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def replay(
    workflow: WorkflowDef,
    history: Any,
    *,
    workflows: Iterable[WorkflowDef] = (),
    timeout: float = 30.0,
) -> ReplayResult:
    """Re-drive `workflow`'s code against a recorded history without running any step.

    `history` is a `RunInfo` (with history), an export document written by `durable
    runs export` / `Runtime.export_run` (the dict, its JSON text, or a file path).
    Returns a `ReplayResult` when the code still fits; raises `NonDeterminismError`
    (a `ReplayDivergence`) naming the first position where it diverges. Synchronous,
    and may also be awaited: ``await replay(wf, info)``. `workflows` resolves children
    started by name; `timeout` bounds code that awaits something other than ctx calls.
    """
    if not isinstance(workflow, WorkflowDef):
        raise TypeError(f"expected a @workflow, got {workflow!r}")
    rec = to_recorded(history)
    if rec.workflow != workflow.name:
        raise ValueError(
            f"run {rec.run_id!r} is of workflow {rec.workflow!r}, not {workflow.name!r}"
        )
    registry = Registry(list(workflows))
    result: ReplayResult = _run_sync(lambda: _drive(workflow, rec, registry, timeout))
    return result


# -- checking many (the `durable replay` command) ---------------------------------------


class Misfit(msgspec.Struct, frozen=True):
    """One recorded run the code no longer fits."""

    run_id: str
    source: str
    position: int | None
    asked: str
    recorded: str

    def line(self) -> str:
        where = "-" if self.position is None else f"position {self.position}"
        return (
            f"{self.run_id} ({self.source}) {where}: code asked for {self.asked}; "
            f"history holds {self.recorded}"
        )


def _pick(registry: Registry, rec: Recorded) -> WorkflowDef | None:
    exact = registry.find(rec.workflow, rec.version)
    if exact is not None:
        return exact
    try:
        return registry.get(rec.workflow)
    except WorkflowNotFound:
        return None


async def check_recorded(
    workflows: Sequence[WorkflowDef], runs: Iterable[tuple[str, Recorded]]
) -> tuple[int, list[Misfit]]:
    """Replay every (source, run) against `workflows`: how many were checked, the misfits.

    A run is checked against its own (name, version) when registered, else the newest
    version of its name: the code a worker would run it on after the deploy.
    """
    registry = Registry(workflows)
    misfits: list[Misfit] = []
    count = 0
    for source, rec in runs:
        count += 1
        defn = _pick(registry, rec)
        if defn is None:
            misfits.append(
                Misfit(rec.run_id, source, None, f"workflow {rec.workflow!r}", "no such workflow")
            )
            continue
        try:
            await _drive(defn, rec, registry, 30.0)
        except ReplayDivergence as exc:
            misfits.append(Misfit(rec.run_id, source, exc.position, exc.asked, exc.recorded))
        except Exception as exc:
            # The code cannot even be driven over this run (its input no longer fits
            # the schema, it awaits something other than ctx calls...): a misfit too.
            misfits.append(
                Misfit(rec.run_id, source, None, f"{type(exc).__name__}: {exc}", "the run")
            )
    return count, misfits
