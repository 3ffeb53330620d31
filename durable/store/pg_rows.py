"""Row mapping and small helpers of the PostgreSQL store: the runs columns every read
selects, session settings and the pool's connection class. Schema names and the NOTIFY
channel derived from them live in durable/db_schema.py (re-exported here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from durable.core.events import Event
from durable.db_schema import channel_for as channel_for
from durable.db_schema import check_schema
from durable.store.base import ClaimedRun, NewRun, RunRecord
from durable.store.pg_own import OwnConnection

#: PostgresStore's name for the schema-name rule (durable/db_schema.py).
validate_schema = check_schema

RUN_COLS = (
    "id, workflow, version, status, input, output, error, parent_run_id, pending, "
    "created_at, updated_at, ready_at, tags::text AS tags, started_at, finished_at,"
    " queue, queue_key, priority, continued_as, continued_from, forked_from"
)


_TAGS = 12
"""Position of `tags` in RUN_COLS, whose columns are RunRecord's fields in order."""
_END = len(RunRecord.__struct_fields__)
"""Columns after RUN_COLS (a run's history, say) are not the record's."""
_json_decode = msgspec.json.Decoder().decode


def _run_and_events_sql(table: str) -> str:
    return (
        f"SELECT {RUN_COLS}, ARRAY(SELECT ROW(e.seq, e.pos, e.kind, e.name, e.payload,"  # noqa: S608
        f" e.created_at) FROM events e WHERE e.run_id = r.id ORDER BY e.seq) FROM {table} r"
        " WHERE r.id = $1"
    )


RUN_AND_EVENTS = _run_and_events_sql("runs")
"""A run and its history in one statement: the events come as an array of anonymous
records, which asyncpg decodes as tuples in Event's field order."""
ARCHIVED_RUN_AND_EVENTS = _run_and_events_sql("runs_archive")
"""The same for a run moved to the archive (durable/store/pg_archive.py)."""


def newest_first(row: asyncpg.Record) -> tuple[datetime, str]:
    """The runs list's order (created_at, id), for merging rows of `runs` and the archive."""
    return row["created_at"], row["id"]


def record(row: asyncpg.Record) -> RunRecord:
    """A runs row (RUN_COLS) as a RunRecord. Positional: a page of 50 runs costs a third
    of the CPU of 21 lookups by name (tests/store/test_pg_rows.py checks the order)."""
    tags = row[_TAGS]
    values: Any = (*row[:_TAGS], _json_decode(tags) if tags else {}, *row[_TAGS + 1 : _END])
    return RunRecord(*values)


def run_and_events(row: asyncpg.Record) -> tuple[RunRecord, list[Event]]:
    """A RUN_AND_EVENTS row as the run and its history."""
    return record(row), [Event(*e) for e in row[_END]]


async def insert_events(
    conn: asyncpg.Connection,
    run_ids: list[str],
    events: list[Event],
    now: datetime | None = None,
) -> None:
    """Append events (one run id per event) in one statement; an event without a time
    (steps leave it to the commit) gets `now`."""
    await conn.execute(
        "INSERT INTO events (run_id, seq, pos, kind, name, payload, created_at) "
        "SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::text[], $5::text[], "
        "$6::bytea[], $7::timestamptz[])",
        run_ids,
        [e.seq for e in events],
        [e.pos for e in events],
        [e.kind for e in events],
        [e.name for e in events],
        [e.payload for e in events],
        [e.created_at or now for e in events],
    )


def first_of_each(runs: Sequence[NewRun]) -> tuple[list[NewRun], list[int]]:
    """The requests that would create a run if made one after another, and for each
    request the index (in that list) of the one it resolves to.

    One insert statement cannot tell which of two rows with the same run id (or
    idempotency key) it kept: both would read as created, and each caller would start
    the run with its own input (issue 16, item 13). So a batch resolves duplicates
    before the insert, as sequential calls would: the first request with an id or key
    wins; a later one with the same id, or else the same workflow and key (keys are
    scoped per workflow), stands for that run.
    """
    kept: list[NewRun] = []
    by_id: dict[str, int] = {}
    by_key: dict[tuple[str, str], int] = {}
    index: list[int] = []
    for run in runs:
        i = by_id.get(run.run_id)
        key = None if run.idempotency_key is None else (run.workflow, run.idempotency_key)
        if i is None and key is not None:
            i = by_key.get(key)
        if i is None:
            i = len(kept)
            kept.append(run)
            by_id[run.run_id] = i
            if key is not None:
                by_key[key] = i
        index.append(i)
    return kept, index


#: Existing runs by id ($1), and by (workflow, idempotency key) pairs ($2, $3). The
#: `IS NOT NULL` lets the planner use the partial unique index of migration 0013.
EXISTING_RUNS_SQL = (
    "SELECT id, NULL AS workflow, NULL AS ikey FROM runs WHERE id = ANY($1::text[])"
    " UNION ALL"
    " SELECT r.id, r.workflow, r.idempotency_key FROM unnest($2::text[], $3::text[])"
    "  AS k(workflow, ikey)"
    " JOIN runs r ON r.workflow = k.workflow AND r.idempotency_key = k.ikey"
    " WHERE r.idempotency_key IS NOT NULL"
)


async def existing_runs(
    conn: asyncpg.Connection | OwnConnection, runs: Sequence[NewRun]
) -> tuple[set[str], dict[tuple[str, str], str]]:
    """For runs an insert skipped: which of their ids exist, and which run holds each
    (workflow, idempotency key) they carry. Keys are scoped per workflow name (migration
    0013), so the lookup goes by both, on that unique index."""
    if not runs:
        return set(), {}
    keyed = [r for r in runs if r.idempotency_key is not None]
    by_id: set[str] = set()
    by_key: dict[tuple[str, str], str] = {}
    for row in await conn.fetch(
        EXISTING_RUNS_SQL,
        [r.run_id for r in runs],
        [r.workflow for r in keyed],
        [r.idempotency_key for r in keyed],
    ):
        if row["workflow"] is None:
            by_id.add(row["id"])
        else:
            by_key[row["workflow"], row["ikey"]] = row["id"]
    return by_id, by_key


def claimed(row: asyncpg.Record, *, cleanup: bool = False) -> ClaimedRun:
    """A claim's `RETURNING` row as a ClaimedRun: id, workflow, version, input, fence,
    wakeups, parent_run_id, started_at, deadline, and `fresh` / `taken_from` where the
    claim returns them (the ordinary, queue and cleanup claims share this mapping)."""
    return ClaimedRun(
        run_id=row["id"],
        workflow=row["workflow"],
        version=row["version"],
        input=row["input"],
        fence=row["fence"],
        wakeups=row["wakeups"],
        parent_run_id=row["parent_run_id"],
        started_at=row["started_at"],
        deadline=row["deadline"],
        fresh=row.get("fresh", False),
        taken_from=row.get("taken_from"),
        cleanup=cleanup,
    )


def leased(run: NewRun, now: datetime, deadline: datetime | None) -> ClaimedRun | None:
    """The claim of a run inserted already leased to its creator (fence 1, first start)."""
    if run.owner is None:
        return None
    return ClaimedRun(
        run_id=run.run_id,
        workflow=run.workflow,
        version=run.version,
        input=run.input,
        fence=1,
        wakeups=0,
        parent_run_id=run.parent_run_id,
        started_at=now,
        deadline=deadline,
        fresh=True,
    )


class Connection(asyncpg.Connection):  # type: ignore[misc]
    """Pool connections skip asyncpg's reset-on-release round trip.

    The reset undoes session state (LISTEN, advisory locks, SET) that durable never
    leaves on pooled connections: listeners use their own connection and migrations take
    a transaction-scoped lock.
    """

    def get_reset_query(self) -> str:
        return ""


def settings(schema: str) -> dict[str, str]:
    """Session settings of every connection. On a Citus coordinator, shard tables are
    hidden from pg_class by a per-row filter that makes asyncpg's type introspection take
    seconds per new connection; durable never looks for shards, so it turns that off
    (a dotted name is an inert placeholder on plain PostgreSQL)."""
    return {
        # check_schema's rule makes the unquoted name the same identifier as the
        # quoted one CREATE SCHEMA used (no case folding).
        "search_path": check_schema(schema),
        "application_name": "durable",
        "citus.override_table_visibility": "off",
    }
