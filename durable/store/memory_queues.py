"""MemoryStore's flow control: the rules of `durable_claim_queue` (migration 0006) in-process.

Each method runs without awaiting, so on one event loop it is atomic: claimers of one
queue (several runtimes sharing the store, or `sweep()`) take turns exactly as the
queue row lock makes them in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from durable.core.vocabulary import TERMINAL, RunStatus
from durable.store.base import ClaimedRun, Created, KeyStats, NewRun, QueueSpec, QueueStats
from durable.store.memory_lease import take

_WAITING = (RunStatus.PENDING, RunStatus.SUSPENDED)


def _active(run: Any) -> bool:
    return run.started_at is not None and run.status not in TERMINAL


class MemoryQueues:
    """The queue methods of the Store protocol, over MemoryStore's runs."""

    # Provided by MemoryStore (rows are its `_Run` dataclass).
    _runs: dict[str, Any]

    def __init__(self) -> None:
        self._queues: dict[str, QueueSpec] = {}

    def _insert_run(
        self,
        run: NewRun,
        now: datetime,
        *,
        parent_run_id: str | None,
        idempotency_key: str | None,
    ) -> None:  # pragma: no cover - provided by MemoryStore
        raise NotImplementedError

    async def claim_queue(
        self,
        *,
        owner: str,
        queue: QueueSpec,
        keys: Sequence[tuple[str, str]],
        limit: int,
        now: datetime,
        lease_s: float,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedRun]:
        if limit <= 0 or not keys:
            return []
        self._queues[queue.name] = queue
        wanted = set(keys)
        skip = set(exclude)
        lease_until = now + timedelta(seconds=lease_s)
        mine = [r for r in self._runs.values() if r.queue == queue.name]
        eligible = [r for r in mine if (r.workflow, r.version) in wanted and r.id not in skip]
        # 1. Already active runs that are runnable: they keep their slot.
        again = [
            r
            for r in eligible
            if r.started_at is not None
            and (
                (r.status in _WAITING and r.ready_at is not None and r.ready_at <= now)
                or (
                    r.status == RunStatus.RUNNING
                    and r.lease_until is not None
                    and r.lease_until < now
                )
            )
        ]
        again.sort(key=lambda r: (r.ready_at is None, r.ready_at or now, r.order))
        claimed = [take(r, owner, lease_until, now, r.started_at) for r in again[:limit]]
        free = limit - len(claimed)
        # 2. New starts within the limits (see durable_claim_queue for why the start
        # stamp is never before a recorded finish).
        start = max([now] + [r.finished_at for r in mine if r.finished_at is not None])
        active = [r for r in mine if _active(r)]
        if queue.concurrency is not None:
            free = min(free, queue.concurrency - len(active))
        if queue.rate_limit is not None and queue.rate_period_s is not None:
            since = now - timedelta(seconds=queue.rate_period_s)
            window = sum(1 for r in mine if r.started_at is not None and r.started_at > since)
            free = min(free, queue.rate_limit - window)
        if free <= 0:
            return claimed
        waiting = [
            r
            for r in eligible
            if r.status == RunStatus.PENDING
            and r.started_at is None
            and r.ready_at is not None
            and r.ready_at <= now
        ]
        waiting.sort(key=lambda r: (r.priority, r.order))
        if queue.per_key_concurrency is None:
            chosen = waiting[:free]
        else:
            busy: dict[str, int] = {}
            for r in active:
                if r.queue_key is not None:
                    busy[r.queue_key] = busy.get(r.queue_key, 0) + 1
            never = datetime.min.replace(tzinfo=now.tzinfo)
            last: dict[str, datetime] = {}
            for r in mine:
                if r.queue_key is not None and r.started_at is not None:
                    last[r.queue_key] = max(r.started_at, last.get(r.queue_key, never))
            rank: dict[str, int] = {}
            ranked: list[tuple[int, int, datetime, int, Any]] = []
            for r in waiting:
                if r.queue_key is None:
                    ranked.append((r.priority, 1, never, r.order, r))
                    continue
                k = rank[r.queue_key] = rank.get(r.queue_key, 0) + 1
                if k <= queue.per_key_concurrency - busy.get(r.queue_key, 0):
                    ranked.append((r.priority, k, last.get(r.queue_key, never), r.order, r))
            # Round-robin within a priority: k-th runs of keys before (k+1)-th ones, and
            # the key served least recently first (as durable_claim_queue orders them).
            ranked.sort(key=lambda t: t[:4])
            chosen = [t[4] for t in ranked[:free]]
        claimed += [take(r, owner, lease_until, now, start) for r in chosen]
        return claimed

    async def create_debounced(self, run: NewRun, now: datetime) -> Created:
        for r in self._runs.values():
            if (
                r.debounce_key == run.debounce_key
                and r.workflow == run.workflow
                and r.status == RunStatus.PENDING
                and r.started_at is None
            ):
                r.input = run.input
                r.ready_at = run.ready_at or now
                r.queue_key = run.queue_key
                r.priority = run.priority
                r.updated_at = now
                return Created(r.id, False)
        if run.run_id in self._runs:
            return Created(run.run_id, False)
        self._insert_run(run, now, parent_run_id=run.parent_run_id, idempotency_key=None)
        return Created(run.run_id, True)

    async def upsert_queues(self, queues: Sequence[QueueSpec], now: datetime) -> None:
        for q in queues:
            self._queues[q.name] = q

    async def queue_stats(self, now: datetime, name: str | None = None) -> list[QueueStats]:
        out: list[QueueStats] = []
        for qname in sorted(self._queues):
            if name is not None and qname != name:
                continue
            spec = self._queues[qname]
            mine = [r for r in self._runs.values() if r.queue == qname]
            keys: dict[str, list[int]] = {}
            active = pending = 0
            for r in mine:
                if r.status in TERMINAL:
                    continue
                started = r.started_at is not None
                active += started
                pending += not started
                if r.queue_key is not None:
                    counts = keys.setdefault(r.queue_key, [0, 0])
                    counts[0 if started else 1] += 1
            window = 0
            if spec.rate_period_s is not None:
                since = now - timedelta(seconds=spec.rate_period_s)
                window = sum(1 for r in mine if r.started_at is not None and r.started_at > since)
            out.append(
                QueueStats(
                    name=qname,
                    concurrency=spec.concurrency,
                    per_key_concurrency=spec.per_key_concurrency,
                    rate_limit=spec.rate_limit,
                    rate_period_s=spec.rate_period_s,
                    active=active,
                    pending=pending,
                    window_starts=window,
                    keys=[KeyStats(k, a, p) for k, (a, p) in sorted(keys.items())],
                )
            )
        return out
