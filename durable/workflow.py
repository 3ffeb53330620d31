"""`@workflow`: a workflow's definition, its input schema handling, and the registry."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, overload

import msgspec

from durable.durations import parse_duration
from durable.errors import ValidationError, WorkflowNotFound
from durable.queues import Queue
from durable.retry import DEFAULT_RETRY, RetryPolicy

if TYPE_CHECKING:
    from durable.context import Context
    from durable.schedules import Schedule

WorkflowFn = Callable[..., Awaitable[Any]]
ClaimPlan = tuple[list[tuple[str, str]], list[tuple[Queue, list[tuple[str, str]]]]]


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural ordering, so version "10" is newer than "9" and "2.0" newer than "1.10"."""
    parts = re.findall(r"\d+|[^\d]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


MAX_NAME_LENGTH = 255
"""Longest name or id accepted (characters). Ids and keys are indexed and sent in
notifications: PostgreSQL refuses index entries over ~2.7 kB and NOTIFY payloads over
8 kB, and such a refusal would come at commit time, in a batch shared with other runs."""


def check_name(name: str, what: str) -> str:
    """Names and ids are stored as text, so they are checked at the call, before anything
    is batched: non-empty, at most MAX_NAME_LENGTH characters, no NUL (PostgreSQL rejects
    it), no lone surrogate (not encodable as UTF-8) and no 0x1F unit separator (it joins
    run ids in notifications)."""
    if not isinstance(name, str) or not name or "\x00" in name or "\x1f" in name:
        raise ValidationError(
            f"invalid {what} {name!r}: must be a non-empty string without NUL or \\x1f"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"invalid {what} {name[:40]!r}... ({len(name)} characters):"
            f" must be at most {MAX_NAME_LENGTH} characters"
        )
    if name.isascii():  # O(1) in CPython: the usual name needs no UTF-8 copy to check
        return name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"invalid {what} {name!r}: contains a lone surrogate, which is not valid UTF-8"
        ) from None
    return name


def _check_function(fn: Any, name: str | None) -> None:
    """Catch at decoration what would otherwise fail only when a run executes it."""
    label = getattr(fn, "__qualname__", None) or repr(fn)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"@workflow on {label}: name must be a non-empty string, not {name!r}")
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"@workflow on {label}: a workflow must be an `async def` function taking (ctx, input)"
        )
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise TypeError(
            f"@workflow on {label}: a workflow must take (ctx, input) -- the run's "
            "context and its input -- as its first two parameters"
        ) from None
    except ValueError:  # no signature to inspect (some builtins): let it through
        pass


class WorkflowDef:
    """A registered workflow: the function plus everything the engine needs to run it."""

    def __init__(
        self,
        fn: WorkflowFn,
        *,
        name: str | None = None,
        version: str = "1",
        schema: Any = None,
        schedules: Sequence[Schedule] = (),
        retry_policy: RetryPolicy | None = None,
        max_events: int | None = None,
        execution_timeout: Any = None,
        queue: Queue | None = None,
    ) -> None:
        _check_function(fn, name)
        if queue is not None and not isinstance(queue, Queue):
            raise ValidationError(f"invalid queue {queue!r}: expected a durable.Queue")
        self.queue = queue
        self.fn = fn
        self.name = check_name(fn.__name__ if name is None else name, "workflow name")
        self.version = check_name(str(version), "workflow version")
        self.schema = schema
        self.schedules = list(schedules)
        self.retry_policy = retry_policy or DEFAULT_RETRY
        if max_events is not None and (not isinstance(max_events, int) or max_events < 1):
            raise ValueError(f"invalid max_events {max_events!r}: must be an int >= 1")
        self.max_events = max_events
        self.execution_timeout = (
            None if execution_timeout is None else parse_duration(execution_timeout)
        )
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__wrapped__ = fn

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.version)

    def __repr__(self) -> str:
        return f"<workflow {self.name!r} version {self.version!r}>"

    async def __call__(self, ctx: Context, input: Any) -> Any:
        return await self.fn(ctx, input)

    def validate_input(self, value: Any) -> Any:
        """Check `value` against the schema; return what to encode. Raises ValidationError."""
        schema = self.schema
        if schema is None:
            return value
        try:
            if _is_pydantic(schema):
                model = value if isinstance(value, schema) else schema.model_validate(value)
                return model.model_dump(mode="json")
            if isinstance(schema, type) and isinstance(value, schema):
                return value
            return msgspec.convert(value, schema, strict=False)
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            raise ValidationError(f"invalid input for workflow {self.name!r}: {exc}") from exc

    def convert_input(self, decoded: Any) -> Any:
        """Turn the stored (decoded) input into what the workflow function receives."""
        schema = self.schema
        if schema is None:
            return decoded
        if _is_pydantic(schema):
            return schema.model_validate(decoded)
        return msgspec.convert(decoded, schema, strict=False)


def _is_pydantic(schema: Any) -> bool:
    return isinstance(schema, type) and hasattr(schema, "model_validate")


@overload
def workflow(fn: WorkflowFn, /) -> WorkflowDef: ...


@overload
def workflow(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    version: str = "1",
    schema: Any = None,
    schedules: Sequence[Schedule] = (),
    retry_policy: RetryPolicy | None = None,
    max_events: int | None = None,
    execution_timeout: Any = None,
    queue: Queue | None = None,
) -> Callable[[WorkflowFn], WorkflowDef]: ...


def workflow(
    fn: WorkflowFn | None = None,
    /,
    *,
    name: str | None = None,
    version: str = "1",
    schema: Any = None,
    schedules: Sequence[Schedule] = (),
    retry_policy: RetryPolicy | None = None,
    max_events: int | None = None,
    execution_timeout: Any = None,
    queue: Queue | None = None,
) -> WorkflowDef | Callable[[WorkflowFn], WorkflowDef]:
    """Declare an `async def (ctx, input)` as a durable workflow.

    Usable bare (`@workflow`) or with options (`@workflow(version="2", schema=Order)`).
    `queue=Queue(...)` puts its runs under that queue's flow-control limits.
    """

    def wrap(f: WorkflowFn) -> WorkflowDef:
        return WorkflowDef(
            f,
            name=name,
            version=version,
            schema=schema,
            schedules=schedules,
            retry_policy=retry_policy,
            max_events=max_events,
            execution_timeout=execution_timeout,
            queue=queue,
        )

    if fn is not None:
        return wrap(fn)
    return wrap


class Registry:
    """The workflows one runtime can start and execute: several versions per name."""

    def __init__(self, workflows: Iterable[WorkflowDef] = ()) -> None:
        self._by_name: dict[str, dict[str, WorkflowDef]] = {}
        self._plan: ClaimPlan | None = None
        for w in workflows:
            self.register(w)

    def register(self, defn: WorkflowDef) -> None:
        if not isinstance(defn, WorkflowDef):
            raise TypeError(f"{defn!r} is not a @workflow; decorate it with @durable.workflow")
        if defn.queue is not None:
            # One queue name, one set of limits: claims pass the limits they know.
            for other in self.all():
                q = other.queue
                if q is not None and q.name == defn.queue.name and q != defn.queue:
                    raise ValidationError(
                        f"queue {q.name!r} is declared twice with different "
                        f"limits: {q!r} and {defn.queue!r}"
                    )
        self._by_name.setdefault(defn.name, {})[defn.version] = defn
        self._plan = None

    def get(self, name: str, version: str | None = None) -> WorkflowDef:
        versions = self._by_name.get(name)
        if not versions:
            raise WorkflowNotFound(f"no workflow named {name!r} is registered")
        if version is None:
            return versions[max(versions, key=_version_key)]
        defn = versions.get(version)
        if defn is None:
            raise WorkflowNotFound(
                f"workflow {name!r} has no registered version {version!r} "
                f"(registered: {sorted(versions, key=_version_key)})"
            )
        return defn

    def find(self, name: str, version: str) -> WorkflowDef | None:
        return self._by_name.get(name, {}).get(version)

    def keys(self) -> list[tuple[str, str]]:
        return [(n, v) for n, vs in self._by_name.items() for v in vs]

    def all(self) -> list[WorkflowDef]:
        return [d for vs in self._by_name.values() for d in vs.values()]

    def claim_plan(self) -> ClaimPlan:
        """The (workflow, version) pairs claimed without a queue, and those of each queue
        (computed once per registry change: the claim loop asks on every claim)."""
        if self._plan is not None:
            return self._plan
        plain: list[tuple[str, str]] = []
        queued: dict[str, tuple[Queue, list[tuple[str, str]]]] = {}
        for d in self.all():
            if d.queue is None:
                plain.append(d.key)
            else:
                queued.setdefault(d.queue.name, (d.queue, []))[1].append(d.key)
        self._plan = (plain, list(queued.values()))
        return self._plan
