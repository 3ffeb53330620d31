"""MemoryStore's side of issue 14: the same rules as pg_diagnostics.py, on dicts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from durable.core.vocabulary import NOTICE_WAKE, RunStatus
from durable.errors import RunNotFailed, RunNotFound
from durable.store.base import LeaseInfo, WorkerInfo

if TYPE_CHECKING:
    from durable.core.events import Event

_FORGET_AFTER = timedelta(hours=1)


class MemoryDiagnostics:
    """Mixin of MemoryStore: retry in place, leases, worker rows, schema check."""

    _runs: dict[str, Any]
    _live: dict[str, Any]
    _events: dict[str, dict[int, Event]]

    @property
    def _workers(self) -> dict[str, WorkerInfo]:
        # Created on first use: MemoryStore's other bases do not chain __init__.
        rows: dict[str, WorkerInfo] = self.__dict__.setdefault("_worker_rows", {})
        return rows

    def _notify(self, payloads: Iterable[str]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def check_schema(self) -> None:
        """A memory store always exists."""

    async def reopen_run(
        self, run_id: str, *, drop_seqs: Sequence[int], last_seq: int, now: datetime
    ) -> str:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        if run.status != RunStatus.FAILED:
            raise RunNotFailed(
                f"run {run_id!r} is {run.status}: only a failed run (or one parked by "
                "NonDeterminismError) can be retried"
            )
        events = self._events.get(run_id, {})
        if max(events, default=0) != last_seq:
            raise RunNotFailed(f"run {run_id!r} changed while it was being retried")
        for seq in drop_seqs:
            events.pop(seq, None)
        run.status = RunStatus.SUSPENDED if events else RunStatus.PENDING
        run.ready_at = now
        run.updated_at = now
        run.error = run.output = run.finished_at = None
        run.lease_owner = run.lease_until = None
        run.waiting_on = []
        run.pending = None
        run.fence += 1
        self._live[run_id] = run  # claimable again
        self._notify([NOTICE_WAKE])
        return str(run.status)

    async def get_lease(self, run_id: str) -> LeaseInfo | None:
        run = self._runs.get(run_id)
        if run is None:
            return None
        return LeaseInfo(run.lease_owner, run.lease_until, run.fence)

    async def database_time(self) -> datetime | None:
        return None  # one process, one clock: the runtime's own is authoritative

    async def record_worker(self, worker: WorkerInfo, now: datetime) -> None:
        old = self._workers.get(worker.id)
        if old is not None:  # as ON CONFLICT: identity and start time stay
            worker = WorkerInfo(
                old.id,
                old.host,
                old.pid,
                old.started_at,
                worker.last_seen,
                worker.expires_at,
                list(worker.workflows),
                worker.clock_skew_s,
            )
        self._workers[worker.id] = worker
        cutoff = now - _FORGET_AFTER
        for wid in [w.id for w in self._workers.values() if w.expires_at < cutoff]:
            del self._workers[wid]

    async def remove_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def list_workers(self, now: datetime) -> list[WorkerInfo]:
        return [
            self._workers[k] for k in sorted(self._workers) if self._workers[k].expires_at > now
        ]
