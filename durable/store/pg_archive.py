"""The run archive (migration 0017): finished runs leave `runs`, so retention drops them by day.

Why: purging a month of history dropped the month's `events` partitions in milliseconds
but deleted its `runs` rows one by one (~1.7 µs each: 2 s for 909,090 runs), and
partitioning `runs` itself made claims, commits and lists several times dearer
(docs/benchmarks.md, "Retention on partitioned history"). So `runs` keeps the live and
the recent runs, and a worker moves older finished runs into `runs_archive`, partitioned
by run-id day like the history (durable/store/pg_partitions.py drops the three tables'
day partitions together). Claims, leases and the group commit never read the archive.

Which runs move (`_MOVE`): finished ones created before the start of the UTC day
`ARCHIVE_AFTER_DAYS` days ago, with an id of durable's own shape (32 hex digits: other
ids fall in no day), no lease and no cancellation cleanup owed, no idempotency key (its
uniqueness is one index on `runs`; checking the archive too under the advisory lock
below was built and measured: a keyed trigger went from 0.53 to 1.93 ms), no queue (flow
control reads a queue's finished runs on `runs`) and no unfinished parent (which may
still read the child's row). The rest stays in `runs` and is purged row by row, as
before.

When: `PostgresStore.maintain` (each worker's heartbeat) pokes an `Archiver`, which runs
a pass at the first poke, then hourly, and at every poke while a backlog lasts, on a
task of its own: a pass over a backlog takes a second or more, and the heartbeat must
not wait for it to renew leases. CHUNK runs per transaction, so no row is locked for
long; concurrent archivers skip each other's rows.

How the rest of the store sees an archived run:
- reads by id (`get_run`, a run with its history, a child's outcome) look in `runs`
  first and in the archive on a miss. A move is one transaction, so a run is in exactly
  one table in any snapshot, and a miss followed by the archive's read cannot lose a run
  moved in between (the second statement sees the move committed);
- the runs list merges the archive only when its page reaches back to `list_horizon`
  (the first page of a busy system never does);
- outside operations (signal, emit, hooks, cancel) answer RunClosed as for any finished
  run; tag updates change it in place; a retry moves it back first (`restore`);
- creating a run with an id the archive could hold (`may_be_archived`: a caller-chosen
  id of durable's shape from days ago) checks the archive under a shared advisory lock
  that the archiver takes exclusively, so the same id can never be live in both tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time as _time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

from durable.store.pg_partitions import ARCHIVE, id_bound, list_partitions
from durable.store.pg_rows import RUN_COLS

ARCHIVE_AFTER_DAYS = 2
"""Runs created before the start of the UTC day this many days ago may move. Two days,
so that a reader or creator whose clock is up to a day off still knows which runs cannot
have moved (`list_horizon`, `may_be_archived` allow one day)."""
CHUNK = 5000
"""Runs moved per transaction."""
BUDGET = 50_000
"""Runs moved per call of `archive` (a few tenths of a second): a worker archives from
its heartbeat, which must go on renewing leases; a backlog (the first run after an
upgrade) continues at the next heartbeat."""

log = logging.getLogger("durable.store")

_OWN_ID = re.compile(r"[0-9a-f]{32}")
_OWN_ID_SQL = f"^{_OWN_ID.pattern}$"  # the same shape, for the archiver's `~` ($5)

_MOVE = (
    "WITH picked AS ("
    " SELECT r.id FROM runs r"
    " WHERE r.id >= $1 AND r.id < $2 AND r.id ~ $5 AND r.created_at < $3"
    "  AND r.status IN ('completed', 'failed', 'cancelled')"
    "  AND r.lease_owner IS NULL AND r.cleanup_until IS NULL"
    "  AND r.idempotency_key IS NULL AND r.queue IS NULL"
    "  AND NOT EXISTS (SELECT 1 FROM runs p WHERE p.id = r.parent_run_id"
    "   AND p.status NOT IN ('completed', 'failed', 'cancelled'))"
    " ORDER BY r.id LIMIT $4 FOR UPDATE OF r SKIP LOCKED),"
    " moved AS (DELETE FROM runs r USING picked WHERE r.id = picked.id RETURNING r.*)"
    " INSERT INTO runs_archive SELECT * FROM moved"
)

GET_ARCHIVED = f"SELECT {RUN_COLS} FROM runs_archive WHERE id = $1"  # noqa: S608


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _today() -> date:
    # Real time, not a test clock: run ids and the day partitions carry the wall clock.
    return datetime.now(UTC).date()


def list_horizon(today: date | None = None) -> datetime:
    """No archived run was created at or after this moment (one day of clock margin)."""
    return _day_start((today or _today()) - timedelta(days=ARCHIVE_AFTER_DAYS - 1))


def id_floor(today: date | None = None) -> str:
    """No archived run has an id at or above this one (one day of clock margin)."""
    return id_bound((today or _today()) - timedelta(days=ARCHIVE_AFTER_DAYS - 1))


def may_be_archived(run_id: str, floor: str) -> bool:
    """Whether a run with this id could be in the archive (`floor`: `id_floor()`).
    New ids are above the floor: the usual answer costs one string comparison."""
    return run_id < floor and _OWN_ID.fullmatch(run_id) is not None


async def _lock(conn: asyncpg.Connection, schema: str, *, shared: bool) -> None:
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(f"SELECT {fn}(hashtextextended($1, 0))", f"durable archive {schema}")


async def hold_off(conn: asyncpg.Connection, schema: str) -> None:
    """Hold off the archiver until this transaction ends (creating a possibly archived
    id, moving a run back)."""
    await _lock(conn, schema, shared=True)


async def archive(
    conn: asyncpg.Connection,
    schema: str,
    today: date | None = None,
    *,
    chunk: int = CHUNK,
    budget: int | None = None,
) -> int:
    """Move the finished runs of past days (see the module docstring) into the archive,
    stopping once `budget` moved; return how many moved. Only days that have an archive
    partition are considered."""
    last = (today or _today()) - timedelta(days=ARCHIVE_AFTER_DAYS)
    bound, created_before = id_bound(last), _day_start(last)
    moved = 0
    for part in await list_partitions(conn, ARCHIVE):
        if part.low is None or part.high is None or part.high > bound:
            continue
        while True:
            async with conn.transaction():
                await _lock(conn, schema, shared=False)
                status = await conn.execute(
                    _MOVE, part.low, part.high, created_before, chunk, _OWN_ID_SQL
                )
            n = int(status.rsplit(" ", 1)[-1])
            moved += n
            if budget is not None and moved >= budget:
                return moved
            if n < chunk:
                break
    return moved


async def archived_status(conn: asyncpg.Connection, run_id: str) -> str | None:
    """The status of an archived run (always a finished one), or None."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM runs_archive WHERE id = $1", run_id
    )
    return status


async def archived_ids(conn: asyncpg.Connection, run_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT id FROM runs_archive WHERE id = ANY($1::text[])", run_ids)
    return {r["id"] for r in rows}


async def restore(conn: asyncpg.Connection, run_id: str) -> bool:
    """Move an archived run back into `runs` (in the caller's transaction)."""
    status: str = await conn.execute(
        "WITH m AS (DELETE FROM runs_archive WHERE id = $1 RETURNING *)"
        " INSERT INTO runs SELECT * FROM m",
        run_id,
    )
    return status.endswith(" 1")


class Archiver:
    """Runs `archive` passes in the background for one store (see the module docstring:
    when). `poke` never waits for a pass; `close` cancels the running one (its current
    chunk rolls back)."""

    def __init__(
        self, acquire: Callable[[], Any], schema: str, every_s: float, budget: int = BUDGET
    ) -> None:
        self._acquire, self._schema, self._every, self._budget = acquire, schema, every_s, budget
        self._last: float | None = None  # time.monotonic() when the last pass started
        self._backlog = False
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Start a pass if one is due and none is running."""
        if self._task is not None and not self._task.done():
            return
        now = _time.monotonic()
        if self._last is not None and now - self._last < self._every and not self._backlog:
            return
        self._last = now
        self._task = asyncio.create_task(self.run_pass(), name="durable-archive")

    async def run_pass(self) -> None:
        try:
            async with self._acquire() as conn:
                moved = await archive(conn, self._schema, budget=self._budget)
        except Exception as exc:  # retried at the next due time, a warning meanwhile
            log.warning("schema %s: archiving finished runs failed: %s", self._schema, exc)
            self._backlog = False
            return
        # A backlog larger than one pass's budget goes on at the next poke.
        self._backlog = moved >= self._budget

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
