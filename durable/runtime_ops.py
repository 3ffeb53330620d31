"""Runtime operations beside the run lifecycle: outside-the-run events, hooks and tags,
queue statistics, schedule administration, export and change subscriptions.

A mixin of `durable.runtime.Runtime` (kept apart so runtime.py stays readable); it
relies only on the members declared under TYPE_CHECKING below.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from durable import codec
from durable.errors import RunNotFound, ValidationError
from durable.records import HookInfo, RunInfo, run_info
from durable.store import QueueStats, RunRecord, Store
from durable.tags import check_tags
from durable.workflow import check_name

if TYPE_CHECKING:
    from durable.clock import Clock
    from durable.runtime import Runtime
    from durable.workflow import Registry

log = logging.getLogger("durable.runtime")


class RuntimeOps:
    """Mixed into Runtime."""

    if TYPE_CHECKING:
        clock: Clock
        registry: Registry
        _has_queues: bool
        _subscribers: list[Callable[[str, str], None]]

        @property
        def store(self) -> Store: ...

        async def _record(self, run_id: str) -> RunRecord: ...

        def _check_size(self, data: bytes, what: str) -> None: ...

    def _as_runtime(self) -> Runtime:
        return cast("Runtime", self)

    async def queue_stats(self, name: str) -> QueueStats:
        """Active and pending runs of the queue `name` (and per key), and how many starts
        its rate window holds. ValidationError for a queue never declared or used."""
        if not isinstance(name, str):
            raise ValidationError(f"invalid queue name {name!r}")
        found = await self.store.queue_stats(self.clock.now(), name)
        if not found:
            raise ValidationError(f"unknown queue {name!r}: no workflow declared it")
        return found[0]

    async def list_queues(self) -> list[QueueStats]:
        """`queue_stats` of every queue known to the database, by name."""
        return await self.store.queue_stats(self.clock.now())

    async def _declare_queues(self) -> None:
        """Record the limits of the registered queues, so `queues list` shows them
        before any run was claimed (claims record them too)."""
        specs = {d.queue.name: d.queue.spec() for d in self.registry.all() if d.queue}
        self._has_queues = bool(specs)
        if specs:
            await self.store.upsert_queues(list(specs.values()), self.clock.now())

    async def export_run(self, run_id: str) -> dict[str, Any]:
        """The run and its full history with the stored payload bytes, as `durable runs
        export` writes it (format in durable.testing.replay), for offline replay checks."""
        from durable.testing.replay import export_document

        rec = await self._record(run_id)
        return export_document(rec, await self.store.load_events(run_id))

    # -- schedules (implemented in durable.schedules) ----------------------------------

    async def list_schedules(self) -> list[Any]:
        """Every schedule known to the database, with its next fire time and paused flag."""
        from durable.schedules import ScheduleAdmin

        return await ScheduleAdmin(self._as_runtime()).list()

    async def pause_schedule(self, name: str) -> None:
        """Stop a schedule from firing until resumed (survives restarts)."""
        from durable.schedules import ScheduleAdmin

        await ScheduleAdmin(self._as_runtime()).pause(name)

    async def resume_schedule(self, name: str) -> None:
        """Let a paused schedule fire again, from its next tick on."""
        from durable.schedules import ScheduleAdmin

        await ScheduleAdmin(self._as_runtime()).resume(name)

    # -- outside-the-run operations (issue 11) -----------------------------------------

    async def emit_event(self, run_id: str, type: str, payload: Any = None) -> None:
        """Record a custom event for an unfinished run from outside; `get_events` lists it.

        RunNotFound / RunClosed; ValidationError for a bad type or an oversize payload.
        """
        check_name(type, "event type")
        data = None if payload is None else codec.encode(payload, what=f"event {type!r}")
        if data is not None:
            self._check_size(data, f"payload of event {type!r}")
        await self.store.emit_event(self._id(run_id), type, data, self.clock.now())
        self._publish(run_id, "event")

    async def create_hook(self, run_id: str, name: str, metadata: Any = None) -> str:
        """Create a hook for an unfinished run from outside and return its token.

        Executing it delivers its payload to the run as the signal `name` (the workflow
        waits with `ctx.wait_for_signal(name)`).
        """
        import secrets

        check_name(name, "hook name")
        meta = None if metadata is None else codec.encode(metadata, what="hook metadata")
        if meta is not None:
            self._check_size(meta, f"metadata of hook {name!r}")
        token = secrets.token_urlsafe(24)  # 192 random bits, URL-safe
        await self.store.create_outside_hook(self._id(run_id), token, name, meta, self.clock.now())
        self._publish(run_id, "hook")
        return token

    async def get_hook(self, token: str) -> HookInfo:
        """The hook behind `token` (RunNotFound when there is none)."""
        rec = None
        if isinstance(token, str) and token and "\x00" not in token:
            rec = await self.store.get_hook(token)
        if rec is None:
            raise RunNotFound("no hook with that token")
        meta = codec.decode(rec.metadata)
        return HookInfo(rec.token, rec.run_id, rec.name, meta, rec.created_at, rec.used_at)

    async def update_run(self, run_id: str, *, tags: Mapping[str, str | None]) -> RunInfo:
        """Merge `tags` into the run's tags (a None value removes the key); finished runs
        may be re-labelled too. Returns the run without history."""
        changes = check_tags(tags, removals=True)
        rec = await self.store.update_tags(self._id(run_id), changes, self.clock.now())
        self._publish(run_id, "tags")
        return run_info(rec, [])

    @staticmethod
    def _id(run_id: Any) -> str:
        if not isinstance(run_id, str) or "\x00" in run_id:
            raise RunNotFound(f"no run with id {run_id!r}")
        return run_id

    def subscribe(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Call `callback(run_id, what)` on every change this process sees; returns the
        unsubscribe function. `what`: created, running, suspended, finished, signal,
        hook, event, tags, abandoned, or wake (run_id "": another process's NOTIFY).

        Callbacks run on the event loop and must not block. This is the single seam the
        HTTP server's live updates use.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _publish(self, run_id: str, what: str) -> None:
        for callback in list(self._subscribers):
            try:
                callback(run_id, what)
            except Exception:
                log.exception("runtime subscriber failed on %s %s", run_id, what)
