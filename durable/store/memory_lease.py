"""How the memory store leases a run row to a worker and describes the claim (one way).

Claims, queue claims and local dispatch (a run created, or continued as new, already
leased to its creator) all move a row to `running` under a new fence the same way; the
Postgres store does the same in SQL (the UPDATE … RETURNING of its claims, and
pg_rows.leased).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from durable.core.vocabulary import RunStatus
from durable.store.base import ClaimedRun


def take(
    run: Any,
    owner: str,
    lease_until: datetime,
    now: datetime,
    start: datetime,
    taken_from: str | None = None,
) -> ClaimedRun:
    """Lease `run` (a memory row) to `owner` until `lease_until`, bumping its fence.

    `start` becomes the run's `started_at` when it never started (a fresh claim);
    `taken_from` is the holder whose expired lease this claim replaces, if any.
    """
    fresh = run.started_at is None
    run.status = RunStatus.RUNNING
    run.lease_owner = owner
    run.lease_until = lease_until
    run.fence += 1
    if fresh:
        run.started_at = start
    run.updated_at = now
    return ClaimedRun(
        run_id=run.id,
        workflow=run.workflow,
        version=run.version,
        input=run.input,
        fence=run.fence,
        wakeups=run.wakeups,
        parent_run_id=run.parent_run_id,
        started_at=run.started_at,
        deadline=run.deadline,
        fresh=fresh,
        taken_from=taken_from,
    )
