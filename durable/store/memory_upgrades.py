"""MemoryStore's continue-as-new, fork and cancel-cleanup methods (PostgresStore's in
pg_upgrades.py): a mixin so memory.py stays readable. Same rules as the SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from durable.core.events import Event
from durable.core.vocabulary import NOTICE_WAKE, RunStatus, notice_done
from durable.store.base import ClaimedRun, Created, NewRun
from durable.store.memory_lease import take

if TYPE_CHECKING:
    from durable.store.memory import _Run


class MemoryUpgrades:
    """The lineage and cleanup methods of the Store protocol, on MemoryStore's dicts."""

    if TYPE_CHECKING:  # provided by MemoryStore
        _runs: dict[str, _Run]
        _live: dict[str, _Run]

        def _owned(self, run_id: str, fence: int) -> _Run: ...
        def _check_new_events(self, rows: Sequence[tuple[str, Event]]) -> None: ...
        def _append(self, run_id: str, event: Event, now: datetime) -> None: ...
        def _notify(self, payloads: Sequence[str]) -> None: ...
        def _wake_parents(
            self, children: Sequence[_Run], now: datetime, notes: list[str]
        ) -> None: ...
        def _insert_run(
            self,
            run: NewRun,
            now: datetime,
            *,
            parent_run_id: str | None,
            idempotency_key: str | None,
        ) -> None: ...
        @staticmethod
        def _matches(run: _Run, keys: set[tuple[str, str]]) -> bool: ...

    async def continue_run(
        self, run_id: str, fence: int, events: Sequence[Event], new: NewRun, now: datetime
    ) -> Created:
        old = self._owned(run_id, fence)
        self._check_new_events([(run_id, e) for e in events])
        for event in events:
            self._append(run_id, event, now)
        self._live.pop(old.id, None)
        old.status = RunStatus.COMPLETED
        old.output = None
        old.error = None
        old.continued_as = new.run_id
        old.finished_at = now
        old.updated_at = now
        old.lease_owner = None
        old.lease_until = None
        old.ready_at = None
        old.waiting_on = []
        old.pending = None
        self._insert_run(new, now, parent_run_id=old.parent_run_id, idempotency_key=None)
        row = self._runs[new.run_id]
        row.continued_from = run_id
        notes: list[str] = []
        self._wake_parents([old], now, notes)
        notes.append(notice_done([run_id]))
        claimed = None
        if new.owner is None:
            notes.append(NOTICE_WAKE)
        else:
            claimed = take(row, new.owner, now + timedelta(seconds=new.lease_s), now, now)
        self._notify(notes)
        return Created(new.run_id, True, claimed)

    async def fork_run(
        self, new: NewRun, events: Sequence[Event], forked_from: str, now: datetime
    ) -> None:
        if new.run_id in self._runs:
            raise ValueError(f"a run with id {new.run_id!r} already exists")
        self._insert_run(new, now, parent_run_id=None, idempotency_key=None)
        row = self._runs[new.run_id]
        row.forked_from = forked_from
        if events:
            row.status = RunStatus.SUSPENDED
            row.started_at = now
            for event in events:
                self._append(new.run_id, event, now)
        self._notify([NOTICE_WAKE])

    async def claim_cleanups(
        self,
        *,
        owner: str,
        keys: Sequence[tuple[str, str]],
        limit: int,
        now: datetime,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedRun]:
        if limit <= 0 or not keys:
            return []
        wanted = {(w, v) for w, v in keys}
        skip = set(exclude)
        due = sorted(
            (
                r
                for r in self._runs.values()
                if r.cleanup_until is not None
                and r.cleanup_until > now
                and r.status == RunStatus.CANCELLED
                and (r.lease_until is None or r.lease_until < now)
                and r.id not in skip
                and self._matches(r, wanted)
            ),
            key=lambda r: (r.cleanup_until or now, r.order),
        )[:limit]
        claimed: list[ClaimedRun] = []
        for run in due:
            run.lease_owner = owner
            run.lease_until = run.cleanup_until
            run.fence += 1
            run.updated_at = now
            claimed.append(
                ClaimedRun(
                    run_id=run.id,
                    workflow=run.workflow,
                    version=run.version,
                    input=run.input,
                    fence=run.fence,
                    wakeups=run.wakeups,
                    parent_run_id=run.parent_run_id,
                    started_at=run.started_at or now,
                    deadline=run.cleanup_until,
                    cleanup=True,
                )
            )
        return claimed

    async def append_cleanup(
        self, run_id: str, fence: int, events: Sequence[Event], now: datetime, *, done: bool
    ) -> bool:
        run = self._runs.get(run_id)
        if (
            run is None
            or run.fence != fence
            or run.status != RunStatus.CANCELLED
            or run.cleanup_until is None
        ):
            return False
        self._check_new_events([(run_id, e) for e in events])
        for event in events:
            self._append(run_id, event, now)
        if done:
            run.cleanup_until = None
            run.lease_owner = None
            run.lease_until = None
            run.updated_at = now
        return True
