"""Day partitions of the history (migrations 0009, 0017): created ahead, dropped by retention.

`events`, `run_events` and `runs_archive` (finished runs moved out of `runs`:
durable/store/pg_archive.py) are range-partitioned by run id, one partition per UTC day
of run creation (run ids start with the creation time in hex milliseconds:
durable/ids.py); the partitions of one day in the three tables are created and dropped together.
Two jobs live here:

- `ensure_partitions`: create the partitions of today and the next `AHEAD_DAYS` days,
  so inserts never fall into the DEFAULT partition in normal operation. Called on
  migrate and by workers (`PostgresStore.maintain`, at most once per `MAINTAIN_EVERY`).
  Idempotent, and race-safe across processes: one transaction-scoped advisory lock per
  schema, existence checked under it, and a short `lock_timeout` so a busy table makes
  the attempt give up (it is retried later; 7 days ahead leave plenty of retries).
- `drop_expired`: retention for `purge_runs`. A partition is dropped whole when EVERY
  run of its id range ended before the cutoff and has no unfinished parent; its `runs`,
  `inbox` and `hooks` rows are deleted in the same transaction. Anything less falls back
  to the row-by-row purge. The check is the DELETE itself: it is rolled back when one
  deleted row turns out to be a run that must be kept, so the verdict and the deletion
  see the same rows, and the partition is locked first, so no writer adds history to
  it meanwhile. Runs already moved to the archive partition of the day cost no DELETE: that
  partition is dropped with the history.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

log = logging.getLogger("durable.store")

PARTITIONED = ("events", "run_events", "runs_archive")
"""The tables partitioned by run-id day ranges, the first one leading."""
_LEGACY = ("events", "run_events")
"""The tables migration 0009 converted in place (their old rows in `<table>_legacy`)."""
ARCHIVE = "runs_archive"
AHEAD_DAYS = 7
"""Days of partitions created ahead of today."""
MAINTAIN_EVERY = timedelta(hours=1)
"""How often a worker re-checks that the partitions ahead exist."""
LOCK_TIMEOUT = "500ms"
"""How long partition DDL waits for a table lock before giving up (and retrying later):
short, because writers queue behind a waiting exclusive lock."""

_BOUND = re.compile(r"FOR VALUES FROM \((MINVALUE|'[^']*')\) TO \((MAXVALUE|'[^']*')\)")


class _Keep(Exception):
    """Raised inside a transaction to roll it back: the partition must stay."""


@dataclass(frozen=True)
class Partition:
    """One range partition of the leading table and the id range it holds."""

    name: str
    low: str | None  # None: MINVALUE
    high: str | None  # None: MAXVALUE


def id_bound(day: date) -> str:
    """The smallest run-id prefix of runs created on `day` (UTC): 12 hex digits of ms."""
    ms = int(datetime.combine(day, time(0), tzinfo=UTC).timestamp() * 1000)
    return f"{ms:012x}"


def id_at(moment: datetime) -> str:
    """The run-id prefix of a run created at `moment`."""
    return f"{int(moment.timestamp() * 1000):012x}"


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


async def list_partitions(conn: asyncpg.Connection, table: str) -> list[Partition]:
    """The range partitions of `table` in the connection's schema, lowest ids first."""
    rows = await conn.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass($1)",
        table,
    )
    parts: list[Partition] = []
    for row in rows:
        m = _BOUND.search(row["bound"] or "")
        if m is None:  # the DEFAULT partition
            continue
        low, high = (None if v.endswith("VALUE") else v[1:-1] for v in m.groups())
        parts.append(Partition(row["relname"], low, high))
    parts.sort(key=lambda p: p.low or "")
    return parts


async def is_partitioned(conn: asyncpg.Connection) -> bool:
    relkind = await conn.fetchval(
        "SELECT c.relkind::text FROM pg_class c WHERE c.oid = to_regclass($1)", PARTITIONED[0]
    )
    return bool(relkind == "p")


async def _lock(conn: asyncpg.Connection, schema: str) -> None:
    # One lock per schema, apart from the migrations' (a constant) by its text.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"durable partitions {schema}"
    )


async def ensure_partitions(
    conn: asyncpg.Connection, schema: str, today: date, ahead: int = AHEAD_DAYS
) -> list[str]:
    """Create the missing day partitions from `today` to `today + ahead`; return names.

    Days already covered by another partition (the legacy one of an in-place migration)
    are skipped. Runs in its own transaction (a savepoint when called inside one).
    """
    created: list[str] = []
    try:
        await _ensure(conn, schema, today, ahead, created)
    except asyncpg.LockNotAvailableError as exc:
        # A busy table: nothing was changed; the next call (hourly, or on restart) retries.
        log.warning("schema %s: history partitions not created now: %s", schema, exc)
        return []
    if created:
        log.info("schema %s: created history partitions %s", schema, ", ".join(created))
    return created


async def _ensure(
    conn: asyncpg.Connection, schema: str, today: date, ahead: int, created: list[str]
) -> None:
    async with conn.transaction():
        await _lock(conn, schema)
        if not await is_partitioned(conn):
            return
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await _drop_empty_legacy(conn)
        for table in PARTITIONED:
            parts = await list_partitions(conn, table)
            for offset in range(ahead + 1):
                day = today + timedelta(days=offset)
                low, high = id_bound(day), id_bound(day + timedelta(days=1))
                if any(_overlaps(p, low, high) for p in parts):
                    continue
                name = partition_name(table, day)
                await conn.execute(
                    f'CREATE TABLE "{name}" PARTITION OF "{table}"'
                    f" FOR VALUES FROM ('{low}') TO ('{high}')"
                )
                parts.append(Partition(name, low, high))
                created.append(name)


async def _drop_empty_legacy(conn: asyncpg.Connection) -> None:
    """Drop the `<table>_legacy` partitions (migration 0009) once they hold no row.

    On a new database they are empty from the start, so day partitions begin today.
    Locked first, so nothing can be written into them between the check and the drop.
    """
    legacy = [f"{t}_legacy" for t in _LEGACY]
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", legacy[0]):
        return
    names = ", ".join(f'"{n}"' for n in legacy)
    rows = " OR ".join(f"EXISTS (SELECT 1 FROM {n})" for n in names.split(", "))  # noqa: S608
    if await conn.fetchval(f"SELECT {rows}"):
        return  # the usual case after an upgrade: no lock taken
    await conn.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
    if not await conn.fetchval(f"SELECT {rows}"):
        await conn.execute(f"DROP TABLE {names}")


def _overlaps(p: Partition, low: str, high: str) -> bool:
    return (p.low is None or p.low < high) and (p.high is None or low < p.high)


async def drop_expired(
    conn: asyncpg.Connection, schema: str, before: datetime, today: date | None = None
) -> int:
    """Drop the partitions whose every run ended before `before`; return runs deleted.

    Only partitions whose id range ends before the cutoff's day are candidates (a run
    created after the cutoff cannot have ended before it). Each is tried in its own
    transaction; one that must stay (or whose lock is busy) is left to the row purge.
    """
    if not await is_partitioned(conn):
        return 0
    # Never today's or later partitions, even for a cutoff in the future (a test's
    # virtual clock): run ids carry the real time, so those still receive new runs.
    # (`today` is for tests that pretend a later day.)
    cutoff_id = min(id_at(before), id_bound(today or datetime.now(UTC).date()))
    twins = {t: {p.low: p for p in await list_partitions(conn, t)} for t in PARTITIONED[1:]}
    total = 0
    for part in await list_partitions(conn, PARTITIONED[0]):
        if part.high is None or part.high > cutoff_id:
            continue
        others = [twins[t].get(part.low) for t in PARTITIONED[1:]]
        try:
            total += await _drop_one(conn, schema, part, others, before)
        except _Keep:
            archived = _archive_of(others)
            if archived is not None:
                total += await _purge_archived(conn, archived, before)
            continue
        except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError) as exc:
            log.info("schema %s: partition %s busy, purged row by row: %s", schema, part.name, exc)
    return total


async def _drop_one(
    conn: asyncpg.Connection,
    schema: str,
    part: Partition,
    others: list[Partition | None],
    before: datetime,
) -> int:
    in_range, args = _range_sql("id", part)
    # A cheap probe first (the partial indexes of open runs): a partition pinned by a
    # run still open is skipped without deleting and rolling back its whole range.
    if await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM runs WHERE {in_range}"  # noqa: S608 - constant fragments
        "  AND status IN ('pending', 'suspended'))"
        f" OR EXISTS (SELECT 1 FROM runs WHERE {in_range} AND status = 'running')",
        *args,
    ):
        raise _Keep
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        names = ", ".join(f'"{p.name}"' for p in [part, *others] if p is not None)
        # No history can be added to these partitions until we commit or roll back.
        await conn.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
        row: Any = await conn.fetchrow(
            f"WITH d AS (DELETE FROM runs WHERE {in_range}"  # noqa: S608 - constant fragments
            " RETURNING status, finished_at, parent_run_id)"
            " SELECT count(*) AS n,"
            "  count(*) FILTER (WHERE status NOT IN ('completed', 'failed', 'cancelled')"
            f"   OR finished_at IS NULL OR finished_at >= ${len(args) + 1}) AS kept,"
            "  coalesce(array_agg(DISTINCT parent_run_id)"
            "   FILTER (WHERE parent_run_id IS NOT NULL), '{}') AS parents"
            " FROM d",
            *args,
            before,
        )
        if row["kept"]:
            raise _Keep
        n: int = row["n"]
        archived = _archive_of(others)
        if archived is not None:
            # Archived runs all finished (with no unfinished parent) when they moved; the
            # partition stays if one of them ended after the cutoff.
            seen: Any = await conn.fetchrow(
                "SELECT count(*) AS n, count(*) FILTER (WHERE finished_at >= $1) AS kept"  # noqa: S608
                f' FROM "{archived.name}"',
                before,
            )
            if seen["kept"]:
                raise _Keep
            n += seen["n"]
        if row["parents"] and await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE id = ANY($1::text[])"
            " AND status NOT IN ('completed', 'failed', 'cancelled'))",
            row["parents"],
        ):
            raise _Keep
        owned, owned_args = _range_sql("run_id", part)
        await conn.execute(f"DELETE FROM inbox WHERE {owned}", *owned_args)  # noqa: S608
        await conn.execute(f"DELETE FROM hooks WHERE {owned}", *owned_args)  # noqa: S608
        await conn.execute(f"DROP TABLE {names}")
    log.info("schema %s: dropped history partition %s (%d runs)", schema, part.name, n)
    return n


def _archive_of(others: list[Partition | None]) -> Partition | None:
    return next((p for p in others if p is not None and p.name.startswith(ARCHIVE)), None)


async def _purge_archived(conn: asyncpg.Connection, archived: Partition, before: datetime) -> int:
    """The row-by-row purge of one archive partition that must stay (a run in its day
    ended after the cutoff, or is still open): its runs that ended before go, with their
    history. (`PostgresStore.purge` deletes rows of `runs` only.)"""
    async with conn.transaction():
        ids = [
            r["id"]
            for r in await conn.fetch(
                f'DELETE FROM "{archived.name}" WHERE finished_at < $1 RETURNING id',  # noqa: S608
                before,
            )
        ]
        for table in ("events", "run_events", "inbox", "hooks") if ids else ():
            await conn.execute(f"DELETE FROM {table} WHERE run_id = ANY($1::text[])", ids)  # noqa: S608
    return len(ids)


def _range_sql(column: str, part: Partition) -> tuple[str, list[str]]:
    """`column` within the partition's id range, as SQL with $1/$2 and its arguments."""
    conds: list[str] = []
    args: list[str] = []
    if part.low is not None:
        args.append(part.low)
        conds.append(f"{column} >= ${len(args)}")
    if part.high is not None:
        args.append(part.high)
        conds.append(f"{column} < ${len(args)}")
    return " AND ".join(conds) or "true", args
