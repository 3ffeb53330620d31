"""Seeing and fixing failures: tracebacks, retrying failed runs, honest wait messages.

Runtime helpers kept out of runtime.py (which is at its size limit): the Runtime's
`retry` and its `result()` timeout message call these.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from durable import codec
from durable.clock import SKEW_WARNING_S
from durable.core.reopen import retry_cut
from durable.core.vocabulary import RunStatus
from durable.errors import RunNotFailed

if TYPE_CHECKING:
    from durable.runtime import RunHandle, Runtime
    from durable.store.base import WorkerInfo

log = logging.getLogger("durable.runtime")


def traceback_of(history: Sequence[Any]) -> str | None:
    """The traceback recorded with the run's run_failed event (None without one).

    `history` holds decoded `durable.runtime.Event`s; a run_failed payload is a
    RunFailure (decoded as a dict) when the workflow code raised, else the error text.
    """
    for event in reversed(history):
        if event.kind == "run_failed":
            payload = event.payload
            if isinstance(payload, dict):
                tb = payload.get("traceback")
                return tb if isinstance(tb, str) else None
            return None
    return None


def _wait_text(wait: Any) -> str:
    if not isinstance(wait, dict):
        return str(wait)
    text = f"{wait.get('kind', '?')} {wait.get('name')!r}"
    until = wait.get("until")
    return text if until is None else f"{text} until {until:%Y-%m-%d %H:%M:%S} UTC"


def _skewed(worker: WorkerInfo) -> bool:
    return worker.clock_skew_s is not None and abs(worker.clock_skew_s) > SKEW_WARNING_S


def _skew_text(worker: WorkerInfo) -> str:
    skew = worker.clock_skew_s or 0.0
    side = "ahead of" if skew > 0 else "behind"
    return (
        f"worker {worker.id}: its host's clock is {abs(skew):.1f} s {side} the database's "
        "(leases and timers follow the database's clock; fix the host's NTP)"
    )


async def run_situation(rt: Runtime, run_id: str) -> list[str]:
    """Plain sentences on where an unfinished run stands and why it may not move.

    Shared by `handle.result()`'s timeout message and `durable runs show`: the status,
    the lease holder of a running run, what a suspended run waits on, and whether any
    live worker (its heartbeat row) serves the run's workflow and version.
    """
    rec = await rt.store.get_run(run_id)
    if rec is None:
        return [f"run {run_id!r} does not exist"]
    now = rt.clock.now()
    lines: list[str] = []
    if rec.status == RunStatus.RUNNING:
        lease = await rt.store.get_lease(run_id)
        if lease is not None and lease.owner is not None and lease.until is not None:
            state = "expired" if lease.until < now else "until"
            lines.append(
                f"held by worker {lease.owner} ({state} {lease.until:%Y-%m-%d %H:%M:%S} UTC)"
            )
    if rec.status == RunStatus.SUSPENDED and rec.pending:
        waits = codec.decode(rec.pending) or []
        if waits:
            lines.append("waiting on " + ", ".join(_wait_text(w) for w in waits))
    if rec.status in (RunStatus.PENDING, RunStatus.SUSPENDED, RunStatus.RUNNING):
        workers = await rt.store.list_workers(now)
        key = (rec.workflow, rec.version)
        serving = [w for w in workers if key in [tuple(k) for k in w.workflows]]
        if serving:
            lines.append(
                f"{len(serving)} live worker(s) serve workflow {rec.workflow!r} version "
                f"{rec.version!r}: " + ", ".join(w.id for w in serving[:3])
            )
            lines.extend(_skew_text(w) for w in serving if _skewed(w))
        else:
            other = f" ({len(workers)} live worker(s) serve other workflows)" if workers else ""
            lines.append(
                f"no live worker serves workflow {rec.workflow!r} version {rec.version!r}"
                f"{other}: start one that registers it, e.g. `durable worker APP`"
            )
    return lines


async def wait_or_explain(
    rt: Runtime, run_id: str, seconds: float | None, handle: RunHandle | None = None
) -> tuple[str, bytes | None, str | None]:
    """`rt._wait_finished` bounded by `seconds`; on timeout a TimeoutError that says
    which run, its status, what it waits on and whether any live worker serves it."""
    try:
        async with asyncio.timeout(seconds):
            return await rt._wait_finished(run_id, handle)
    except TimeoutError:
        if seconds is None:
            raise
        head = f"run {run_id!r} did not finish within {seconds:g}s"
        try:
            rec = await rt.store.get_run(run_id)
            status = "unknown" if rec is None else rec.status
            details = [f"{head}: it is {status}", *await run_situation(rt, run_id)]
        except Exception as exc:  # the database is gone too: say so, keep the timeout
            details = [head, f"its status could not be read ({type(exc).__name__}: {exc})"]
        raise TimeoutError("; ".join(details)) from None


class FailureOps:
    """`Runtime.retry`, mixed into Runtime (runtime.py is at its size limit)."""

    migrate_on_start: bool = True
    """Apply migrations when the runtime starts. False: only check that the schema
    exists (SchemaNotFound naming it), as the CLI's read-only commands do."""

    async def retry(self: Any, run_id: str) -> RunHandle:
        """Resume a failed run (or one parked by NonDeterminismError) in place.

        It runs again on the currently registered code, from the failed step (whose
        failed attempts are dropped, so it gets its whole retry budget again) or from
        the position where the code diverged from history; the history before that point
        is kept and replayed, and signals waiting in its inbox stay there. Returns the
        run's handle. RunNotFailed for a run that is not failed (completed, cancelled,
        still going), RunNotFound for an unknown id.
        """
        from durable.runtime import RunHandle

        rec = await self._record(run_id)
        if rec.status != RunStatus.FAILED:
            raise RunNotFailed(
                f"run {run_id!r} is {rec.status}: only a failed run (or one parked by "
                "NonDeterminismError) can be retried"
            )
        if self._executor is not None:
            await self._executor.settled(run_id)
        # Outcomes of the failed attempt this process still holds must not answer for
        # the retried run.
        self._outcomes.pop(run_id, None)
        self._watched.pop(run_id, None)
        events = await self.store.load_events(run_id)
        drop = retry_cut(events, rec.error)
        last = max((e.seq for e in events), default=0)
        status = await self.store.reopen_run(
            run_id, drop_seqs=drop, last_seq=last, now=self.clock.now()
        )
        log.warning(
            "run %s retried: %d event(s) dropped, now %s; it resumes on the registered code",
            run_id,
            len(drop),
            status,
        )
        if self._executor is not None and self.worker:
            self._executor.poke()
        self._publish(run_id, "retried")
        return RunHandle(self, run_id, created=False)
