"""The workflow context `ctx`: every durable operation a workflow can perform.

A thin adapter. Each call takes its history position synchronously, when it is
*called* (program order, not completion order, defines the history, so `gather` over
ctx calls replays deterministically), asks `durable.core.decide` once what history
says about that position, and performs the I/O the decision asks for through the
execution behind it (`durable.run_io.RunIO`). The replay rules live in core.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import secrets
import types
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, assert_never, overload

import anyio.to_thread
import msgspec

from durable import codec
from durable.core import decide
from durable.core.decide import LIVE, Fail, Live, Retry, Value, Wait
from durable.core.events import EventKind, OpKind
from durable.core.history import ChildRef, StepFailure, meta_encode
from durable.core.state import ContinueAsNew, Phase
from durable.core.vocabulary import TERMINAL, child_key, hook_key, signal_key
from durable.durations import Duration, parse_duration
from durable.errors import DurableError, PayloadTooLarge, SerializationError, StepFailed
from durable.retry import RetryPolicy
from durable.workflow import WorkflowDef, check_name

if TYPE_CHECKING:
    from durable.run_io import RunIO

T = TypeVar("T")

log = logging.getLogger("durable.workflow")
_worker_log = logging.getLogger("durable.worker")

_NO_DURATION: Any = object()  # ctx.sleep's second argument, when only a duration is given
_NOT_PROVIDED: Any = object()  # ctx.context before the context provider has run

# What `current_context()` returns: set in each run's task (and copied into the tasks
# and step threads it starts), so step functions reach `ctx.context` without `ctx`.
_current_context: contextvars.ContextVar[Any] = contextvars.ContextVar("durable_context")


def current_context() -> Any:
    """The `ctx.context` of the run whose code (workflow or step) is calling.

    Lets a step function reach the services the runtime's `context_provider` built
    without being passed `ctx`. None when the runtime has no provider; RuntimeError
    outside a run.
    """
    try:
        return _current_context.get()
    except LookupError:
        raise RuntimeError(
            "durable.current_context() called outside a workflow run or its steps"
        ) from None


class ExecutionInfo(msgspec.Struct, frozen=True):
    """What `Runtime(context_provider=...)` is given when it builds `ctx.context`.

    The provider runs once per execution of a run (its first claim, and every replay
    after a restart, an eviction or a move to another worker), before workflow code.
    """

    run_id: str
    workflow: str
    version: str
    parent_run_id: str | None
    input: Any


# Enum members bound once: attribute access on an Enum class costs ~100ns on 3.11,
# which shows on the per-step path.
_STEP = OpKind.STEP
_STEP_COMPLETED = EventKind.STEP_COMPLETED
_CLOSING = Phase.CLOSING
_RESULT_OF_STEP = "result of step"
# A plain `async def` function is recognised from its code flags (what
# inspect.iscoroutinefunction ends up reading, after unwrapping methods and partials
# and a dozen calls): anything else still goes through inspect.
_FUNCTION = types.FunctionType
_CO_COROUTINE = inspect.CO_COROUTINE

# What each kind of message wait records: (op, inbox kind, waiting, received, timed out).
_SIGNAL = (
    OpKind.SIGNAL,
    "signal",
    EventKind.SIGNAL_WAITING,
    EventKind.SIGNAL_RECEIVED,
    EventKind.SIGNAL_TIMED_OUT,
)
_HOOK = (
    OpKind.HOOK_WAIT,
    "hook",
    EventKind.HOOK_WAITING,
    EventKind.HOOK_RECEIVED,
    EventKind.HOOK_TIMED_OUT,
)


class WorkflowLogger(logging.LoggerAdapter[logging.Logger]):
    """`ctx.logger`: tags lines with workflow and run id, silent during replay."""

    def __init__(self, execution: RunIO) -> None:
        # The module's logger, not getLogger() (which takes logging's lock) per run.
        super().__init__(log, {"workflow": execution.defn.name, "run_id": execution.run_id})
        self._state = execution.state

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return f"[{extra['workflow']} {extra['run_id']}] {msg}", kwargs

    def isEnabledFor(self, level: int) -> bool:
        return not self._state.replaying and super().isEnabledFor(level)


def _log_attempt(run_id: str, name: str, failure: StepFailure) -> None:
    """One WARNING per failed attempt (once it is recorded; replays never log it)."""
    _worker_log.warning(
        "run %s: step %r attempt %d failed: %s: %s (%s)",
        run_id,
        name,
        failure.attempt,
        failure.error_type,
        failure.message,
        "final" if failure.final else f"retrying at {failure.retry_at:%H:%M:%S.%f}",
    )


def _fn_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"cannot derive a step name from {fn!r}; pass one: ctx.step('name', fn)")
    return name


def _timeout_s(timeout: Any) -> float | None:
    return None if timeout is None else parse_duration(timeout)


class Hook:
    """A token outside code can complete once with `runtime.execute_hook(token, payload)`."""

    def __init__(self, ctx: Context, name: str, token: str) -> None:
        self._ctx = ctx
        self.name = name
        self.token = token

    def wait(self, timeout: Any = None) -> Awaitable[Any]:
        """The payload given to `execute_hook`, or None when `timeout` passes first."""
        return self._ctx._hook_wait(self, timeout)

    def __repr__(self) -> str:
        return f"<Hook {self.name!r}>"


class ChildHandle:
    """A started child run; `await handle.result()` waits for it durably."""

    def __init__(self, ctx: Context, run_id: str, workflow: str) -> None:
        self._ctx = ctx
        self.run_id = run_id
        self.workflow = workflow

    def result(self) -> Awaitable[Any]:
        return self._ctx._child_result(self)

    def __repr__(self) -> str:
        return f"<ChildHandle {self.workflow!r} {self.run_id!r}>"


class Context:
    """What a workflow receives as `ctx`. See docs/api.md for each operation."""

    def __init__(self, execution: RunIO) -> None:
        self._x = execution
        self._st = execution.state
        self.run_id = execution.run_id
        self.workflow = execution.defn.name
        self.version = execution.defn.version
        self.parent_run_id = execution.parent_run_id
        self.logger = WorkflowLogger(execution)
        self._context: Any = _NOT_PROVIDED

    # -- the context provider's object ------------------------------------------------

    @property
    def context(self) -> Any:
        """What `Runtime(context_provider=...)` built for this execution (None without one).

        Not recorded: rebuilt on each execution (claim or replay). Steps reach it with
        `durable.current_context()`.
        """
        value = self._context
        return None if value is _NOT_PROVIDED else value

    async def _provide(self, provider: Callable[[ExecutionInfo], Any] | None, value: Any) -> None:
        """Build `ctx.context` (before workflow code runs) and expose it to steps.

        A provider that raises fails the run with a DurableError naming it: without
        its services the workflow cannot run, and retrying the claim would loop.
        """
        context = None
        if provider is not None:
            info = ExecutionInfo(
                self.run_id, self.workflow, self.version, self.parent_run_id, value
            )
            try:
                context = provider(info)
                if inspect.isawaitable(context):
                    context = await context
            except Exception as exc:
                raise DurableError(
                    f"context_provider failed for run {self.run_id!r}: {type(exc).__name__}: {exc}"
                ) from exc
        self._context = context
        _current_context.set(context)

    # -- steps ------------------------------------------------------------------------

    def step(self, name_or_fn: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Run `fn` at least once and record its result exactly once.

        `ctx.step("name", fn, *args)` or `ctx.step(fn, *args)`; `retry=`, `timeout=`
        and `on_error=` are reserved, other keyword arguments go to `fn`.
        `on_error(error, attempt)` (sync or async) is called after each failed attempt,
        before the failure is recorded: at least once per failed attempt, not recorded,
        and an exception it raises is logged and changes nothing.
        """
        retry: RetryPolicy | None
        on_error: Callable[[Exception, int], Any] | None
        if kwargs:
            retry = kwargs.pop("retry", None)
            timeout = kwargs.pop("timeout", None)
            on_error = kwargs.pop("on_error", None)
        else:  # the common case: no dict lookups on the per-step path
            retry = timeout = on_error = None
        if isinstance(name_or_fn, str):
            if not args:
                raise TypeError(f"ctx.step({name_or_fn!r}) needs a function to run")
            name, fn, args = name_or_fn, args[0], args[1:]
        else:
            name, fn = _fn_name(name_or_fn), name_or_fn
        check_name(name, "step name")
        if not callable(fn):
            raise TypeError(f"step {name!r}: {fn!r} is not callable")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"step {name!r}: retry must be a RetryPolicy, not {retry!r}")
        if on_error is not None and not callable(on_error):
            raise TypeError(f"step {name!r}: on_error must be callable, not {on_error!r}")
        timeout_s = None if timeout is None else parse_duration(timeout)
        pos = self._st.take()
        return self._step(
            pos, name, fn, args, kwargs, retry or self._x.defn.retry_policy, timeout_s, on_error
        )

    async def _step(
        self,
        pos: int,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: RetryPolicy,
        timeout_s: float | None,
        on_error: Callable[[Exception, int], Any] | None,
    ) -> Any:
        x = self._x
        st = self._st
        with x.op():
            d = decide.step(name, st.lookup(pos, _STEP, name))
            if d is LIVE:
                attempt = 1
            elif type(d) is Value:
                return d.value
            elif type(d) is Fail:
                raise d.error
            elif type(d) is Retry:
                if st.phase is _CLOSING:
                    x.cancel_point()
                if d.at is not None:
                    await x.wait_until(pos, "retry", name, d.at)
                attempt = d.attempt
            else:
                raise AssertionError(d)
            if st.phase is _CLOSING:
                # The run was cancelled and this execution runs its cleanup: the step the
                # run had reached raises WorkflowCancelled here (its body does not run);
                # steps of the cleanup code after that run and are recorded as usual.
                x.cancel_point()
            while True:
                if x.unsettled:
                    # The body is a side effect: the records of steps before it, kept
                    # back to share a commit (RunExecution.defer), are made durable first.
                    await x.settle()
                st.begin_attempt(None if st.deadline is None else x.now())
                try:
                    try:
                        if x.telemetry.on:
                            with x.telemetry.step(name, attempt):
                                value = await self._call(fn, args, kwargs, timeout_s)
                        elif (
                            timeout_s is None
                            and type(fn) is _FUNCTION
                            and fn.__code__.co_flags & _CO_COROUTINE
                        ):
                            # The common case, an `async def` function: its coroutine is
                            # awaited right here (no _call/_invoke frames in between).
                            value = await fn(*args, **kwargs)
                        else:
                            value = await self._call(fn, args, kwargs, timeout_s)
                    finally:
                        # From here to the event's seq nothing awaits: the room this
                        # attempt held passes straight to its event.
                        st.end_attempt()
                    try:
                        data, decoded = codec.roundtrip(value, what=_RESULT_OF_STEP, name=name)
                        x.check_payload(data, _RESULT_OF_STEP, name)
                    except (SerializationError, PayloadTooLarge) as exc:
                        if on_error is not None:
                            await self._on_error(on_error, name, exc, attempt)
                        failure = decide.step_unstorable(attempt, exc)
                        await x.append(
                            st.event(
                                pos,
                                EventKind.STEP_FAILED,
                                name,
                                meta_encode(failure),
                                x.now(),
                            )
                        )
                        _log_attempt(self.run_id, name, failure)
                        raise decide.step_error(name, failure) from exc
                    # No created_at: the group commit stamps the batch's time (a clock
                    # read less per step). Kept back for the run's next commit when
                    # nothing else of the run is running (RunExecution.defer).
                    event = st.event(pos, _STEP_COMPLETED, name, data, None)
                    if not x.defer(event):
                        await x.append(event)
                    return decoded
                except StepFailed:
                    raise
                except asyncio.CancelledError:
                    x.cancellation_delivered()
                    raise
                except Exception as exc:
                    if isinstance(exc, TimeoutError) and not str(exc) and timeout_s is not None:
                        exc = TimeoutError(f"step {name!r} timed out after {timeout_s:g}s")
                    if on_error is not None:
                        await self._on_error(on_error, name, exc, attempt)
                    verdict: object = True
                    if policy.should_retry is not None and policy.may_retry(attempt, exc):
                        verdict = await self._should_retry(policy.should_retry, exc, attempt)
                    now = x.now()
                    failure = decide.step_attempt_failed(attempt, exc, policy, now, verdict)
                    await x.append(
                        st.event(pos, EventKind.STEP_FAILED, name, meta_encode(failure), now)
                    )
                    _log_attempt(self.run_id, name, failure)
                    if failure.final:
                        raise decide.step_error(name, failure) from exc
                    assert failure.retry_at is not None
                await x.wait_until(pos, "retry", name, failure.retry_at)
                attempt += 1

    async def _on_error(
        self, on_error: Callable[[Exception, int], Any], name: str, exc: Exception, attempt: int
    ) -> None:
        """Call a step's on_error; its own failure is logged and changes nothing."""
        try:
            await self._invoke(on_error, (exc, attempt), {})
        except Exception:
            log.warning(
                "[%s %s] on_error of step %r raised (ignored) after attempt %d",
                self.workflow,
                self.run_id,
                name,
                attempt,
                exc_info=True,
            )

    @staticmethod
    async def _should_retry(
        should_retry: Callable[[Exception, int], Any], exc: Exception, attempt: int
    ) -> object:
        """The policy's verdict for a failed attempt, or the exception it raised.

        Called on the event loop (a decision, not I/O); an async one is awaited.
        """
        try:
            verdict = should_retry(exc, attempt)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception as err:
            return err
        return verdict

    async def _call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout_s: float | None,
    ) -> Any:
        if timeout_s is None:
            return await self._invoke(fn, args, kwargs)
        async with asyncio.timeout(timeout_s):
            return await self._invoke(fn, args, kwargs)

    @staticmethod
    async def _invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if (
            (type(fn) is _FUNCTION and fn.__code__.co_flags & _CO_COROUTINE)
            or inspect.iscoroutinefunction(fn)
            or inspect.iscoroutinefunction(
                getattr(fn, "__call__", None)  # noqa: B004 - callables with async __call__
            )
        ):
            return await fn(*args, **kwargs)
        # Sync functions run in a worker thread so they never block the event loop.
        result = await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
        if inspect.isawaitable(result):
            return await result
        return result

    # -- timers -----------------------------------------------------------------------

    @overload
    def sleep(self, duration: Duration, /) -> Awaitable[None]: ...
    @overload
    def sleep(self, name: str, duration: Duration) -> Awaitable[None]: ...
    def sleep(self, name: Any, duration: Any = _NO_DURATION) -> Awaitable[None]:
        """A durable timer: the run suspends and resumes when `duration` has passed.

        `ctx.sleep("name", duration)`, or `ctx.sleep(duration)` (named "sleep"). With a
        single argument it is always the duration: `ctx.sleep("5s")` sleeps 5 seconds.
        """
        if duration is _NO_DURATION:
            name, duration = "sleep", name
            try:
                seconds = parse_duration(duration)
            except ValueError as exc:
                raise ValueError(
                    f"{exc} (ctx.sleep with one argument takes a duration; "
                    "name a sleep with ctx.sleep(name, duration))"
                ) from None
        else:
            check_name(name, "sleep name")
            seconds = parse_duration(duration)
        return self._sleep(self._st.take(), name, seconds, None)

    def sleep_until(self, name: str, when: datetime) -> Awaitable[None]:
        """A durable timer until the aware datetime `when`."""
        check_name(name, "sleep name")
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise ValueError(f"invalid time {when!r}: sleep_until needs an aware datetime")
        return self._sleep(self._st.take(), name, None, when)

    async def _sleep(
        self, pos: int, name: str, seconds: float | None, when: datetime | None
    ) -> None:
        x = self._x
        st = self._st
        with x.op():
            d = decide.timer(st.lookup(pos, OpKind.SLEEP, name))
            match d:
                case Value():
                    return
                case Wait(until=until):
                    assert until is not None
                case Live():
                    now = x.now()
                    until = when if seconds is None else decide.after(now, seconds)
                    assert until is not None
                    x.record(
                        st.event(
                            pos, EventKind.TIMER_STARTED, name, decide.until_payload(until), now
                        )
                    )
                case Fail() | Retry():
                    raise AssertionError(d)
                case _:
                    assert_never(d)
            await x.wait_until(pos, "sleep", name, until)
            x.record(st.event(pos, EventKind.TIMER_FIRED, name, None, x.now()))

    # -- signals and hooks ------------------------------------------------------------

    def wait_for_signal(self, name: str, timeout: Any = None) -> Awaitable[Any]:
        """The payload of the next signal `name` (buffered if it came earlier), or None."""
        check_name(name, "signal name")
        timeout_s = _timeout_s(timeout)  # before taking a position: bad input takes none
        return self._message(self._st.take(), _SIGNAL, name, name, timeout_s)

    async def _message(
        self,
        pos: int,
        spec: tuple[OpKind, str, EventKind, EventKind, EventKind],
        name: str,
        inbox_name: str,
        timeout_s: float | None,
    ) -> Any:
        x = self._x
        st = self._st
        op, inbox_kind, waiting, received, timed_out = spec
        key = signal_key(inbox_name) if op is OpKind.SIGNAL else hook_key(inbox_name)
        with x.op():
            d = decide.message(st.lookup(pos, op, name), received, key)
            match d:
                case Value(value=value):
                    return value
                case Wait(until=until):
                    pass
                case Live():
                    now = x.now()
                    until = decide.after(now, timeout_s)
                    x.record(st.event(pos, waiting, name, decide.until_payload(until), now))
                case Fail() | Retry():
                    raise AssertionError(d)
                case _:
                    assert_never(d)
            while True:
                found, payload = await x.take_message(
                    inbox_kind,
                    inbox_name,
                    lambda p: st.event(pos, received, name, p, x.now()),
                )
                if found:
                    return codec.decode(payload)
                now = x.now()
                if decide.passed(until, now):
                    x.record(st.event(pos, timed_out, name, None, now))
                    return None
                await x.park(pos, op.value, name, until, key)

    async def create_hook(self, name: str, metadata: Any = None) -> Hook:
        """A hook outside code completes with `execute_hook(hook.token, payload)`.

        `metadata` (any encodable value) is stored with the hook for `runtime.get_hook`.
        """
        check_name(name, "hook name")
        meta = None if metadata is None else codec.encode(metadata, what="hook metadata")
        pos = self._st.take()
        x = self._x
        st = self._st
        with x.op():
            d = decide.recorded(st.lookup(pos, OpKind.HOOK, name))
            if type(d) is Value:
                return Hook(self, name, d.value)
            token = "h" + secrets.token_urlsafe(24)  # 192 random bits; never starts with "-"
            event = st.event(pos, EventKind.HOOK_CREATED, name, codec.encode(token), x.now())
            await x.create_hook(event, token, name, meta)
            return Hook(self, name, token)

    def _hook_wait(self, hook: Hook, timeout: Any) -> Awaitable[Any]:
        timeout_s = _timeout_s(timeout)  # before taking a position: bad input takes none
        return self._message(self._st.take(), _HOOK, hook.name, hook.token, timeout_s)

    # -- children ---------------------------------------------------------------------

    async def child(
        self, workflow: WorkflowDef | str, input: Any = None, run_id: str | None = None
    ) -> Any:
        """Start a child workflow and return its result (WorkflowFailed if it failed)."""
        handle = await self.start_child(workflow, input, run_id=run_id)
        return await handle.result()

    def start_child(
        self, workflow: WorkflowDef | str, input: Any = None, run_id: str | None = None
    ) -> Awaitable[ChildHandle]:
        """Start a child run; it exists once this returns. `await h.result()` later."""
        defn = self._x.resolve_workflow(workflow)
        value = defn.validate_input(input)
        data = codec.encode(value, what=f"input of child workflow {defn.name!r}")
        if run_id is not None:
            check_name(run_id, "run id")
        return self._start_child(self._st.take(), defn, data, run_id)

    async def _start_child(
        self, pos: int, defn: WorkflowDef, data: bytes, run_id: str | None
    ) -> ChildHandle:
        x = self._x
        st = self._st
        with x.op():
            d = decide.child_started(st.lookup(pos, OpKind.CHILD, defn.name))
            if type(d) is Value:
                ref: ChildRef = d.value
                return ChildHandle(self, ref.run_id, ref.workflow)
            x.check_payload(data, f"input of child workflow {defn.name!r}")
            child_id = run_id or x.new_run_id()
            payload = decide.child_ref(child_id, defn.name, defn.version)
            event = st.event(pos, EventKind.CHILD_STARTED, defn.name, payload, x.now())
            await x.start_child(event, defn, child_id, data)
            return ChildHandle(self, child_id, defn.name)

    async def _child_result(self, handle: ChildHandle) -> Any:
        pos = self._st.take()
        x = self._x
        st = self._st
        name = handle.workflow
        with x.op():
            d = decide.child_result(st.lookup(pos, OpKind.CHILD_RESULT, name), name, handle.run_id)
            if d is LIVE:
                x.record(
                    st.event(
                        pos, EventKind.CHILD_WAITING, name, codec.encode(handle.run_id), x.now()
                    )
                )
                d = Wait(None, child_key(handle.run_id))
            while type(d) is Wait:
                outcome = await x.child_outcome(handle.run_id)
                end = None
                if outcome is not None and outcome.status in TERMINAL:
                    end = decide.child_outcome(
                        handle.run_id, outcome.status, outcome.output, outcome.error
                    )
                if end is None:
                    # A child that continued as new: wait on the chain's newest run,
                    # whose end is what wakes this parent.
                    newest = outcome.run_id if outcome is not None else None
                    await x.park(pos, "child", name, None, child_key(newest or handle.run_id))
                    continue
                event = st.event(pos, end[0], name, end[1], x.now())
                x.record(event)
                d = decide.child_end(event, name)
            match d:
                case Value(value=value):
                    return value
                case Fail(error=error):
                    raise error
                case Live() | Wait() | Retry():
                    raise AssertionError(d)
                case _:
                    assert_never(d)

    # -- upgrades ---------------------------------------------------------------------

    def patched(self, patch_id: str) -> bool:
        """True where the run reaches this point with the patch in place, False when
        replaying a history recorded before the patch existed (keep the old code path).

        Runs that reach it live record a `patch_marker` at this position and get True.
        On replay, a marker of this patch at the position means True; anything else
        there (the event of the old code's next operation) means False, and the check
        takes no position, so the old branch lines up with the old history. See
        `durable.core.decide.patch` and docs/upgrades.md for the patch lifecycle.
        """
        check_name(patch_id, "patch id")
        st = self._st
        known = st.patches.get(patch_id)
        if known is not None:
            return known  # asked before in this execution: same answer, no new position
        x = self._x
        with x.op():
            events, past_history = st.peek()
            d = decide.patch(patch_id, events, past_history)
            if d is LIVE:
                pos = st.take()
                st.lookup(pos, OpKind.PATCH, patch_id)  # nothing there: replaying ends
                x.record(st.event(pos, EventKind.PATCH_MARKER, patch_id, None, x.now()))
                answer = True
            elif type(d) is Value:
                answer = bool(d.value)
                if answer:
                    st.lookup(st.take(), OpKind.PATCH, patch_id)  # the marker's position
            else:
                raise AssertionError(d)
        st.patches[patch_id] = answer
        return answer

    def deprecate_patch(self, patch_id: str) -> None:
        """Phase two of a patch's life: the old branch is gone, `patched` is no longer
        asked, but runs recorded with the marker must still replay. Records the marker
        in new runs and takes the marker's position in old ones, as `patched` does."""
        self.patched(patch_id)

    async def continue_as_new(self, input: Any = None) -> NoReturn:
        """End this run `completed` (output None) and start a fresh run of the same
        workflow and version with `input`, atomically; this run's history stays.

        Never returns: it unwinds the workflow (a BaseException `except Exception`
        cannot stop). `handle.result()` of this run follows to the last run's result.
        """
        defn = self._x.defn
        value = defn.validate_input(input)
        data = codec.encode(value, what=f"input of workflow {defn.name!r}")
        x = self._x
        with x.op():
            x.ensure_writable()
            x.check_payload(data, f"input of workflow {defn.name!r}")
            raise ContinueAsNew(data)

    # -- fan-out ----------------------------------------------------------------------

    async def parallel(self, awaitables: Iterable[Awaitable[T]]) -> list[T]:
        """Await all, results in input order; the first error propagates (as gather)."""
        return list(await asyncio.gather(*awaitables))

    # -- custom events and recorded values ---------------------------------------------

    async def emit_event(self, type: str, payload: Any = None) -> None:
        """Record a custom event in the run's history (read with `runtime.get_events`)."""
        check_name(type, "event type")
        data = codec.encode(payload, what=f"payload of event {type!r}")
        pos = self._st.take()
        x = self._x
        st = self._st
        with x.op():
            if decide.emitted(st.lookup(pos, OpKind.EVENT, type)) is not LIVE:
                return
            x.check_payload(data, f"payload of event {type!r}")
            await x.append(st.event(pos, EventKind.EVENT_EMITTED, type, data, x.now()))

    def _recorded(self, name: str, make: Callable[[], Any]) -> Any:
        st = self._st
        pos = st.take()
        st.sync_ops += 1
        d = decide.recorded(st.lookup(pos, OpKind.RECORD, name))
        if type(d) is Value:
            return d.value
        data, value = codec.roundtrip(make())
        # Buffered, not committed on its own: it becomes durable with the run's next write,
        # and nothing that depended on it can be durable before that write.
        self._x.record(st.event(pos, EventKind.RECORDED, name, data, self._x.now()))
        return value

    def now(self) -> datetime:
        """The current time (aware, UTC), recorded so replays see the same value."""
        value = self._recorded("now", lambda: self._x.now().astimezone(UTC))
        assert isinstance(value, datetime)
        return value

    def random(self) -> float:
        """A random float in [0, 1), recorded so replays see the same value."""
        return float(self._recorded("random", lambda: secrets.SystemRandom().random()))

    def uuid4(self) -> uuid.UUID:
        """A random UUID, recorded so replays see the same value."""
        return uuid.UUID(self._recorded("uuid", lambda: str(uuid.uuid4())))


__all__ = ["ChildHandle", "Context", "ExecutionInfo", "Hook", "current_context"]
