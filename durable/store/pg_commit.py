"""The group commit's statement for the PostgreSQL store: the parameters of one call of
`durable_commit_packed` (migration 0008) built from a `Batch`, and its answer read back.

Kept apart from postgres.py (size limit) and written for the hot path: a busy worker
builds one of these per batch of hundreds of events, a sequential run one per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from durable.store.base import Batch, BatchResult

COMMIT_SQL = (
    "SELECT run_id, outcome FROM durable_commit_packed($1, $2, $3,"
    " $4, $5, $6, $7, $8, $9, $10, $11,"
    " $12, $13, $14, $15, $16,"
    " $17, $18, $19, $20, $21, $22,"
    " $23, $24)"
)

# Sections a batch does not use (finishes, suspends, lease renewals) go as NULL arrays,
# which the function reads as empty (`cardinality(NULL) > 0` is not true, `a || NULL`
# is `a`, unnest pads a NULL array like a short one). An empty list would cost a list
# per column, and asyncpg checks every array argument against three ABCs (Iterable,
# Sized, Mapping) before encoding it: about 30 checks per commit, a sequential run's
# whole batch being one event. NULL is sent as it is.
_NONE2 = (None,) * 2
_NONE5 = (None,) * 5
_NONE6 = (None,) * 6


def commit_args(batch: Batch, channel: str) -> list[Any]:
    """The 24 parameters of `durable_commit_packed` for `batch`, in order."""
    fins = batch.finishes
    sus = batch.suspends
    ext = batch.extends
    evs = [
        (r.run_id, r.fence, (e := r.event).seq, e.pos, e.kind, e.name, e.payload, e.created_at)
        for r in batch.events
    ]
    if fins:
        evs.extend(
            (f.run_id, f.fence, fe.seq, fe.pos, fe.kind, fe.name, fe.payload, fe.created_at)
            for f in fins
            if (fe := f.event) is not None
        )
    # One pass (zip) makes the eight columns; no created_at at all (the usual case:
    # steps take the batch's time) sends NULL, padded with NULLs by unnest. The other
    # event columns stay arrays even when empty: the function counts events by them.
    # Run ids, kinds and names go as one string each (joined by 0x1f, which names
    # never hold): asyncpg would otherwise check every element of those arrays.
    cols: list[Any] = list(zip(*evs, strict=True)) if evs else [()] * 8
    if cols[7].count(None) == len(cols[7]):
        cols[7] = None
    for i in (0, 4, 5):
        cols[i] = "\x1f".join(cols[i])
    args: list[Any] = [batch.now, batch.lease_s, channel, *cols]
    if fins:
        args += (
            [f.run_id for f in fins],
            [f.fence for f in fins],
            [f.status for f in fins],
            [f.output for f in fins],
            [f.error for f in fins],
        )
    else:
        args += _NONE5
    if sus:
        args += (
            [s.run_id for s in sus],
            [s.fence for s in sus],
            [s.ready_at for s in sus],
            ["\x1f".join(s.waiting_on) for s in sus],
            [s.pending for s in sus],
            [s.seen_wakeups for s in sus],
        )
    else:
        args += _NONE6
    if ext:
        args += ([x.run_id for x in ext], [x.fence for x in ext])
    else:
        args += _NONE2
    return args


def commit_result(rows: Sequence[asyncpg.Record]) -> BatchResult:
    """The function's rows (only runs refused, closed or woken) as a BatchResult."""
    result = BatchResult(rejected=set(), woken=set(), closed=set())
    for row in rows:
        outcome = row["outcome"]
        if outcome == "woken":
            result.woken.add(row["run_id"])
        else:
            result.rejected.add(row["run_id"])
            if outcome == "closed":
                result.closed.add(row["run_id"])
    return result
