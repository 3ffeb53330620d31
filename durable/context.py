"""The workflow context `ctx`: every durable operation a workflow can perform.

Each call takes its history position synchronously, when it is *called*, so program
order (not completion order) defines the history and `asyncio.gather` over ctx calls
replays deterministically. The I/O behind each operation belongs to the run's
execution (durable.worker.execution); this module decides, per position, whether the
answer is already in history or must be produced live.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random as _random
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

from durable import codec
from durable.core.events import EventKind, OpKind
from durable.core.history import (
    ChildFailure,
    ChildRef,
    OpState,
    StepFailure,
    Until,
    decode_child,
    decode_child_failure,
    decode_failure,
    decode_until,
    meta_encode,
    step_state,
    wait_state,
)
from durable.durations import parse_duration
from durable.errors import (
    PayloadTooLarge,
    SerializationError,
    StepFailed,
    WorkflowCancelled,
    WorkflowFailed,
)
from durable.retry import RetryPolicy
from durable.telemetry import enabled as telemetry_enabled
from durable.workflow import WorkflowDef, check_name

if TYPE_CHECKING:
    from durable.worker.execution import RunExecution

T = TypeVar("T")

_TIMER_DONE = frozenset({EventKind.TIMER_FIRED})
_SIGNAL_DONE = frozenset({EventKind.SIGNAL_RECEIVED, EventKind.SIGNAL_TIMED_OUT})
_HOOK_DONE = frozenset({EventKind.HOOK_RECEIVED, EventKind.HOOK_TIMED_OUT})
_CHILD_DONE = frozenset({EventKind.CHILD_COMPLETED, EventKind.CHILD_FAILED})


class WorkflowLogger(logging.LoggerAdapter[logging.Logger]):
    """`ctx.logger`: tags lines with workflow and run id, silent during replay."""

    def __init__(self, execution: RunExecution) -> None:
        super().__init__(
            logging.getLogger("durable.workflow"),
            {"workflow": execution.defn.name, "run_id": execution.run_id},
        )
        self._execution = execution

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return f"[{extra['workflow']} {extra['run_id']}] {msg}", kwargs

    def isEnabledFor(self, level: int) -> bool:
        return not self._execution.replaying and super().isEnabledFor(level)


def _fn_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"cannot derive a step name from {fn!r}; pass one: ctx.step('name', fn)")
    return name


def _until(now: datetime, timeout: Any) -> datetime | None:
    if timeout is None:
        return None
    return now + timedelta(seconds=parse_duration(timeout))


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

    def __init__(self, execution: RunExecution) -> None:
        self._x = execution
        self._pos = 0
        self.run_id = execution.run_id
        self.workflow = execution.defn.name
        self.version = execution.defn.version
        self.parent_run_id = execution.parent_run_id
        self.logger = WorkflowLogger(execution)
        self._rng: _random.Random | None = None

    def _take(self) -> int:
        pos = self._pos
        self._pos += 1
        return pos

    # -- steps ------------------------------------------------------------------------

    def step(self, name_or_fn: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Run `fn` at least once and record its result exactly once.

        `ctx.step("name", fn, *args)` or `ctx.step(fn, *args)`; `retry=` and `timeout=`
        are reserved, other keyword arguments go to `fn`.
        """
        retry: RetryPolicy | None = kwargs.pop("retry", None)
        timeout = kwargs.pop("timeout", None)
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
        timeout_s = None if timeout is None else parse_duration(timeout)
        pos = self._take()
        return self._step(
            pos, name, fn, args, kwargs, retry or self._x.defn.retry_policy, timeout_s
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
    ) -> Any:
        x = self._x
        with x.op():
            events = x.history_at(pos, OpKind.STEP, name)
            state, last, attempts = step_state(events)
            if state is OpState.DONE:
                assert last is not None
                if last.kind == EventKind.STEP_COMPLETED:
                    return codec.decode(last.payload)
                raise self._step_failed(name, decode_failure(last))
            if state is OpState.OPEN:
                assert last is not None
                retry_at = decode_failure(last).retry_at
                if retry_at is not None:
                    await x.wait_until(pos, "retry", name, retry_at)
            x.going_live()
            if x.closing:
                # The run was cancelled: cleanup code may still run its steps, but
                # nothing more is recorded for a closed run.
                return await self._call(fn, args, kwargs, timeout_s)
            while True:
                attempts += 1
                x.check_limits()
                try:
                    if telemetry_enabled():
                        with x.telemetry.step(name, attempts):
                            value = await self._call(fn, args, kwargs, timeout_s)
                    else:
                        value = await self._call(fn, args, kwargs, timeout_s)
                    try:
                        data, decoded = codec.roundtrip(value, what=f"result of step {name!r}")
                        x.check_payload(data, f"result of step {name!r}")
                    except (SerializationError, PayloadTooLarge) as exc:
                        # Running the step again would produce the same unstorable value.
                        failure = StepFailure(attempts, type(exc).__name__, str(exc), final=True)
                        await x.append(
                            x.event(pos, EventKind.STEP_FAILED, name, meta_encode(failure))
                        )
                        raise self._step_failed(name, failure) from exc
                    await x.append(x.event(pos, EventKind.STEP_COMPLETED, name, data))
                    return decoded
                except StepFailed:
                    raise
                except asyncio.CancelledError:
                    x.cancellation_delivered()
                    raise
                except Exception as exc:
                    if isinstance(exc, TimeoutError) and not str(exc) and timeout_s is not None:
                        exc = TimeoutError(f"step {name!r} timed out after {timeout_s:g}s")
                    final = attempts >= policy.max_attempts or not policy.is_retryable(exc)
                    retry_at = (
                        None if final else x.now() + timedelta(seconds=policy.delay_after(attempts))
                    )
                    failure = StepFailure(
                        attempts, type(exc).__name__, str(exc), final=final, retry_at=retry_at
                    )
                    await x.append(x.event(pos, EventKind.STEP_FAILED, name, meta_encode(failure)))
                    if final:
                        raise self._step_failed(name, failure) from exc
                    assert retry_at is not None
                    await x.wait_until(pos, "retry", name, retry_at)

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
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - callables with async __call__
        ):
            return await fn(*args, **kwargs)
        # Sync functions run in a worker thread so they never block the event loop.
        result = await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
        if inspect.isawaitable(result):
            return await result
        return result

    @staticmethod
    def _step_failed(name: str, failure: StepFailure) -> StepFailed:
        return StepFailed(
            f"step {name!r} failed after {failure.attempt} attempt(s): "
            f"{failure.error_type}: {failure.message}",
            step=name,
            error_type=failure.error_type,
            error_message=failure.message,
        )

    # -- timers -----------------------------------------------------------------------

    def sleep(self, name: str, duration: Any) -> Awaitable[None]:
        """A durable timer: the run suspends and resumes when `duration` has passed."""
        check_name(name, "sleep name")
        seconds = parse_duration(duration)
        return self._sleep(self._take(), name, lambda now: now + timedelta(seconds=seconds))

    def sleep_until(self, name: str, when: datetime) -> Awaitable[None]:
        """A durable timer until the aware datetime `when`."""
        check_name(name, "sleep name")
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise ValueError(f"invalid time {when!r}: sleep_until needs an aware datetime")
        return self._sleep(self._take(), name, lambda _now: when)

    async def _sleep(self, pos: int, name: str, until_of: Callable[[datetime], datetime]) -> None:
        x = self._x
        with x.op():
            events = x.history_at(pos, OpKind.SLEEP, name)
            state, first = wait_state(events, _TIMER_DONE)
            if state is OpState.DONE:
                return
            if state is OpState.OPEN:
                assert first is not None
                until = decode_until(first)
                assert until is not None
            else:
                x.going_live()
                until = until_of(x.now())
                x.record(x.event(pos, EventKind.TIMER_STARTED, name, meta_encode(Until(until))))
            await x.wait_until(pos, "sleep", name, until)
            x.record(x.event(pos, EventKind.TIMER_FIRED, name, None))

    # -- signals and hooks ------------------------------------------------------------

    def wait_for_signal(self, name: str, timeout: Any = None) -> Awaitable[Any]:
        """The payload of the next signal `name` (buffered if it came earlier), or None."""
        check_name(name, "signal name")
        if timeout is not None:
            parse_duration(timeout)
        return self._message(
            self._take(),
            OpKind.SIGNAL,
            name,
            "signal",
            name,
            "s:" + name,
            timeout,
            (EventKind.SIGNAL_WAITING, EventKind.SIGNAL_RECEIVED, EventKind.SIGNAL_TIMED_OUT),
            _SIGNAL_DONE,
        )

    async def _message(
        self,
        pos: int,
        op: OpKind,
        name: str,
        inbox_kind: str,
        inbox_name: str,
        key: str,
        timeout: Any,
        kinds: tuple[EventKind, EventKind, EventKind],
        done: frozenset[str],
    ) -> Any:
        x = self._x
        waiting, received, timed_out = kinds
        with x.op():
            events = x.history_at(pos, op, name)
            state, ev = wait_state(events, done)
            if state is OpState.DONE:
                assert ev is not None
                return codec.decode(ev.payload) if ev.kind == received else None
            if state is OpState.OPEN:
                assert ev is not None
                until = decode_until(ev)
            else:
                x.going_live()
                until = _until(x.now(), timeout)
                x.record(x.event(pos, waiting, name, meta_encode(Until(until))))
            while True:
                found, payload = await x.take_message(
                    inbox_kind,
                    inbox_name,
                    lambda p: x.event(pos, received, name, p),
                )
                if found:
                    return codec.decode(payload)
                if until is not None and x.now() >= until:
                    x.record(x.event(pos, timed_out, name, None))
                    return None
                await x.park(pos, op.value, name, until, key)

    async def create_hook(self, name: str) -> Hook:
        """A hook outside code completes with `execute_hook(hook.token, payload)`."""
        check_name(name, "hook name")
        pos = self._take()
        x = self._x
        with x.op():
            events = x.history_at(pos, OpKind.HOOK, name)
            if events:
                return Hook(self, name, codec.decode(events[0].payload))
            x.going_live()
            token = "h" + secrets.token_urlsafe(24)  # 192 random bits; never starts with "-"
            await x.create_hook(
                x.event(pos, EventKind.HOOK_CREATED, name, codec.encode(token)), token, name
            )
            return Hook(self, name, token)

    def _hook_wait(self, hook: Hook, timeout: Any) -> Awaitable[Any]:
        if timeout is not None:
            parse_duration(timeout)
        return self._message(
            self._take(),
            OpKind.HOOK_WAIT,
            hook.name,
            "hook",
            hook.token,
            "h:" + hook.token,
            timeout,
            (EventKind.HOOK_WAITING, EventKind.HOOK_RECEIVED, EventKind.HOOK_TIMED_OUT),
            _HOOK_DONE,
        )

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
        return self._start_child(self._take(), defn, data, run_id)

    async def _start_child(
        self, pos: int, defn: WorkflowDef, data: bytes, run_id: str | None
    ) -> ChildHandle:
        x = self._x
        with x.op():
            events = x.history_at(pos, OpKind.CHILD, defn.name)
            if events:
                ref = decode_child(events[0])
                return ChildHandle(self, ref.run_id, ref.workflow)
            x.going_live()
            x.check_payload(data, f"input of child workflow {defn.name!r}")
            child_id = run_id or x.new_run_id()
            ref = ChildRef(child_id, defn.name, defn.version)
            event = x.event(pos, EventKind.CHILD_STARTED, defn.name, meta_encode(ref))
            await x.start_child(event, defn, child_id, data)
            return ChildHandle(self, child_id, defn.name)

    async def _child_result(self, handle: ChildHandle) -> Any:
        pos = self._take()
        x = self._x
        name = handle.workflow
        with x.op():
            events = x.history_at(pos, OpKind.CHILD_RESULT, name)
            state, ev = wait_state(events, _CHILD_DONE)
            if state is not OpState.DONE:
                if state is OpState.FRESH:
                    x.going_live()
                    x.record(
                        x.event(pos, EventKind.CHILD_WAITING, name, codec.encode(handle.run_id))
                    )
                while True:
                    outcome = await x.child_outcome(handle.run_id)
                    if outcome is not None and outcome.status in (
                        "completed",
                        "failed",
                        "cancelled",
                    ):
                        if outcome.status == "completed":
                            ev = x.event(pos, EventKind.CHILD_COMPLETED, name, outcome.output)
                        else:
                            failure = ChildFailure(
                                handle.run_id, outcome.status == "cancelled", outcome.error
                            )
                            ev = x.event(pos, EventKind.CHILD_FAILED, name, meta_encode(failure))
                        x.record(ev)
                        break
                    await x.park(pos, "child", name, None, "c:" + handle.run_id)
            assert ev is not None
            if ev.kind == EventKind.CHILD_COMPLETED:
                return codec.decode(ev.payload)
            failure = decode_child_failure(ev)
            if failure.cancelled:
                raise WorkflowCancelled(
                    f"child run {failure.run_id!r} of workflow {name!r} was cancelled",
                    run_id=failure.run_id,
                )
            raise WorkflowFailed(
                f"child run {failure.run_id!r} of workflow {name!r} failed: {failure.error}",
                run_id=failure.run_id,
                error=failure.error,
            )

    # -- fan-out ----------------------------------------------------------------------

    async def parallel(self, awaitables: Iterable[Awaitable[T]]) -> list[T]:
        """Await all, results in input order; the first error propagates (as gather)."""
        return list(await asyncio.gather(*awaitables))

    # -- custom events and recorded values ---------------------------------------------

    async def emit_event(self, type: str, payload: Any = None) -> None:
        """Record a custom event in the run's history (read with `runtime.get_events`)."""
        check_name(type, "event type")
        data = codec.encode(payload, what=f"payload of event {type!r}")
        pos = self._take()
        x = self._x
        with x.op():
            if x.history_at(pos, OpKind.EVENT, type):
                return
            x.going_live()
            x.check_payload(data, f"payload of event {type!r}")
            await x.append(x.event(pos, EventKind.EVENT_EMITTED, type, data))

    def _recorded(self, name: str, make: Callable[[], Any]) -> Any:
        pos = self._take()
        x = self._x
        events = x.history_at(pos, OpKind.RECORD, name)
        if events:
            return codec.decode(events[0].payload)
        x.going_live()
        data, value = codec.roundtrip(make())
        # Buffered, not committed on its own: it becomes durable with the run's next write,
        # and nothing that depended on it can be durable before that write.
        x.record(x.event(pos, EventKind.RECORDED, name, data))
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


__all__ = ["ChildHandle", "Context", "Hook"]
