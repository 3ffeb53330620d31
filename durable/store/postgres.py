"""PostgreSQL store (asyncpg): migrations, the group-commit batch, claims, inbox, hooks.

Every query is parameterised; the only interpolated identifier is the schema name, which
is validated as a plain identifier and quoted. Connections set `search_path` to the
schema, so the SQL itself names tables unqualified.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from durable.core.events import Event
from durable.core.vocabulary import (
    NOTICE_WAKE,
    RunStatus,
    hook_key,
    signal_key,
)
from durable.db_schema import quoted
from durable.errors import FenceLost, RunClosed, RunNotFound
from durable.redact import redact_dsn
from durable.store import pg_archive, pg_partitions
from durable.store.base import (
    TERMINAL,
    Batch,
    BatchResult,
    ChildOutcome,
    ClaimedRun,
    Created,
    NewRun,
    NoticeCallback,
    RunRecord,
    Store,
)
from durable.store.outside_sql import OutsideOps
from durable.store.pg_cancel import PgCancel
from durable.store.pg_commit import COMMIT_SQL, commit_args, commit_result
from durable.store.pg_diagnostics import PgDiagnostics
from durable.store.pg_listener import PgListener
from durable.store.pg_own import OwnConnection
from durable.store.pg_queues import PgQueueQueries
from durable.store.pg_rows import (
    ARCHIVED_RUN_AND_EVENTS as _ARCHIVED_RUN_AND_EVENTS,
)
from durable.store.pg_rows import (
    RUN_AND_EVENTS as _RUN_AND_EVENTS,
)
from durable.store.pg_rows import (
    RUN_COLS as _RUN_COLS,
)
from durable.store.pg_rows import (
    Connection as _Connection,
)
from durable.store.pg_rows import channel_for as channel_for
from durable.store.pg_rows import claimed as _claimed
from durable.store.pg_rows import existing_runs as _existing_runs
from durable.store.pg_rows import (
    first_of_each as _first_of_each,
)
from durable.store.pg_rows import (
    insert_events as _insert_events,
)
from durable.store.pg_rows import (
    leased as _leased,
)
from durable.store.pg_rows import newest_first as _newest_first
from durable.store.pg_rows import (
    record as _record,
)
from durable.store.pg_rows import run_and_events as _run_and_events
from durable.store.pg_rows import settings as _settings
from durable.store.pg_rows import validate_schema as validate_schema
from durable.store.pg_schedules import PgScheduleQueries
from durable.store.pg_upgrades import PgUpgradeQueries
from durable.store.sql_split import split_sql

_MIGRATION_LOCK = 0x64757261626C65  # "durable" as a number: one advisory lock per database


class PostgresStore(
    PgScheduleQueries, OutsideOps, PgQueueQueries, PgDiagnostics, PgUpgradeQueries, PgCancel
):
    """The production store. One pool per runtime; the group committer borrows from it."""

    def __init__(self, dsn: str, *, schema: str = "durable", pool_size: int = 10) -> None:
        self.dsn = dsn
        self.schema = validate_schema(schema)
        self.channel = channel_for(self.schema)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        # The group commit and the claims each have a connection of their own.
        self._commits = OwnConnection(self._connect, lambda: self.pool)
        self._claims = OwnConnection(self._connect, lambda: self.pool)
        # Inserts of triggered runs: the runtime's trigger batcher sends one at a time.
        self._creates = OwnConnection(self._connect, lambda: self.pool)
        # Citus cannot pass an array of anonymous records from a worker node: after the
        # first refusal, get_run_and_events reads the run and its history apart.
        self._record_arrays = True
        self._maintained_at: float | None = None  # time.monotonic() of the last maintain
        self._archiver = pg_archive.Archiver(
            lambda: self.pool.acquire(), self.schema, pg_partitions.MAINTAIN_EVERY.total_seconds()
        )

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open; use the Runtime as `async with`")
        return self._pool

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                connection_class=_Connection,
                server_settings=_settings(self.schema),
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConnectionError(
                f"cannot connect to PostgreSQL at {redact_dsn(self.dsn)}: {exc}"
            ) from None

    @property
    def _commit_conn(self) -> asyncpg.Connection | None:
        return self._commits.conn

    async def _claim_fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """A claim, on the claims' own connection (see pg_own)."""
        return await self._claims.fetch(query, *args)

    async def close(self) -> None:
        await self._archiver.close()
        await self._commits.close()
        await self._claims.close()
        await self._creates.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _connect(self) -> asyncpg.Connection:
        """A connection of its own (outside the pool), set up as pool connections are."""
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn,
            connection_class=_Connection,
            server_settings=_settings(self.schema),
        )
        return conn

    async def connect_listener(self) -> asyncpg.Connection:
        """A dedicated connection for LISTEN; pool connections must not hold listeners."""
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn, server_settings=_settings(self.schema)
        )
        return conn

    async def listen(
        self, on_notice: NoticeCallback, on_reconnect: Callable[[], None] | None = None
    ) -> PgListener:
        """LISTEN on the schema's channel from a dedicated, self-reconnecting connection."""
        listener = PgListener(self.connect_listener, self.channel, on_notice, on_reconnect)
        await listener.start()
        return listener

    async def migrate(self) -> None:
        """Apply pending migrations under an advisory lock, so concurrent starters are safe."""
        files = sorted(
            (
                f
                for f in resources.files("durable.store.migrations").iterdir()
                if f.name.endswith(".sql")
            ),
            key=lambda f: f.name,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(self.schema)}")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations "
                "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {r["version"] for r in await conn.fetch("SELECT version FROM migrations")}
            for f in files:
                version = int(f.name.split("_", 1)[0])
                if version in applied:
                    continue
                # One statement at a time: Citus refuses a multi-statement string.
                for statement in split_sql(f.read_text()):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO migrations (version, name) VALUES ($1, $2)", version, f.name
                )
            await pg_partitions.ensure_partitions(conn, self.schema, datetime.now(UTC).date())
            if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = $1", "citus"):
                # Citus plans a distributed statement only with its parameter values:
                # the generic plans 0008 asks for fail there ("could not create
                # distributed plan"), so the commit keeps PostgreSQL's default.
                await conn.execute("ALTER FUNCTION durable_commit_packed RESET plan_cache_mode")
        self._maintained_at = time.monotonic()

    async def maintain(self) -> None:
        """Create the history partitions ahead (pg_partitions), at most once an hour,
        and start moving finished runs of past days into the archive (pg_archive: its
        passes run beside the caller, which is a worker's heartbeat).

        Partitions follow real time (run ids carry the wall clock), not a test clock.
        """
        now = time.monotonic()
        every = pg_partitions.MAINTAIN_EVERY.total_seconds()
        if self._maintained_at is None or now - self._maintained_at >= every:
            async with self.pool.acquire() as conn:
                await pg_partitions.ensure_partitions(conn, self.schema, datetime.now(UTC).date())
            self._maintained_at = now
        self._archiver.poke()

    async def purge_partitions(self, before: datetime) -> int:
        """Drop whole history partitions whose every run ended before `before`."""
        async with self.pool.acquire() as conn:
            return await pg_partitions.drop_expired(conn, self.schema, before)

    # -- runs -------------------------------------------------------------------------

    async def create_run(self, run: NewRun, now: datetime) -> tuple[str, bool]:
        created = (await self.create_runs([run], now))[0]
        return created.run_id, created.created

    async def create_runs(self, runs: Sequence[NewRun], now: datetime) -> list[Created]:
        """Insert runs in one statement; an existing run id, or else an existing run of the
        same workflow with the same idempotency key, wins.

        Requests repeating an earlier one's id or (workflow, key) resolve to that run,
        created once.
        """
        kept, index = _first_of_each(runs)
        if len(kept) < len(runs):
            made = await self.create_runs(kept, now)
            return [
                made[i] if kept[i] is r else Created(made[i].run_id, False)
                for r, i in zip(runs, index, strict=True)
            ]
        floor = pg_archive.id_floor()
        if any(pg_archive.may_be_archived(r.run_id, floor) for r in runs):
            return await self._create_past(runs, now)
        return await self._insert_runs(self._creates, runs, now)

    async def _create_past(self, runs: Sequence[NewRun], now: datetime) -> list[Created]:
        """`create_runs` for a batch with an id the archive may hold (an id a caller chose,
        of durable's shape, from days ago): such a run exists already if archived, and
        the archiver is held off until the insert commits (pg_archive)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await pg_archive.hold_off(conn, self.schema)
            archived = await pg_archive.archived_ids(conn, [r.run_id for r in runs])
            fresh = [r for r in runs if r.run_id not in archived]
            made = iter(await self._insert_runs(conn, fresh, now) if fresh else [])
            return [Created(r.run_id, False) if r.run_id in archived else next(made) for r in runs]

    async def _insert_runs(
        self, conn: asyncpg.Connection | OwnConnection, runs: Sequence[NewRun], now: datetime
    ) -> list[Created]:
        deadlines = [
            now + timedelta(seconds=r.deadline_s) if r.deadline_s is not None else None
            for r in runs
        ]
        created = {
            r["id"]
            for r in await conn.fetch(
                "WITH ins AS ("
                " INSERT INTO runs (id, workflow, version, status, input, parent_run_id,"
                "  idempotency_key, ready_at, deadline, created_at, updated_at,"
                "  lease_owner, lease_until, fence, started_at, tags, queue, queue_key,"
                "  priority)"
                " SELECT u.id, u.workflow, u.version,"
                "  CASE WHEN u.owner IS NULL THEN 'pending' ELSE 'running' END,"
                "  u.input, u.parent, u.ikey, coalesce(u.ready, $8::timestamptz), u.deadline,"
                "  $8, $8, u.owner,"
                "  CASE WHEN u.owner IS NULL THEN NULL"
                "   ELSE $8::timestamptz + make_interval(secs => u.lease) END,"
                "  CASE WHEN u.owner IS NULL THEN 0 ELSE 1 END,"
                "  CASE WHEN u.owner IS NULL THEN NULL ELSE $8 END,"
                "  coalesce(u.tags::jsonb, '{}'), u.queue, u.qkey, u.prio"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[],"
                "  $6::text[], $7::timestamptz[], $10::text[], $11::float8[], $12::text[],"
                "  $14::timestamptz[], $15::text[], $16::text[], $17::int[])"
                "  AS u(id, workflow, version, input, parent, ikey, deadline, owner, lease,"
                "   tags, ready, queue, qkey, prio)"
                " ON CONFLICT DO NOTHING RETURNING id, lease_owner)"
                # Only runs left for other workers need a NOTIFY.
                " SELECT id, CASE WHEN lease_owner IS NULL THEN pg_notify($9, $13) END"
                " FROM ins",
                [r.run_id for r in runs],
                [r.workflow for r in runs],
                [r.version for r in runs],
                [r.input for r in runs],
                [r.parent_run_id for r in runs],
                [r.idempotency_key for r in runs],
                deadlines,
                now,
                self.channel,
                [r.owner for r in runs],
                [r.lease_s for r in runs],
                [None if not r.tags else msgspec.json.encode(r.tags).decode() for r in runs],
                NOTICE_WAKE,
                [r.ready_at for r in runs],
                [r.queue for r in runs],
                [r.queue_key for r in runs],
                [r.priority for r in runs],
            )
        }
        missing = [r for r in runs if r.run_id not in created]
        by_id, by_key = await _existing_runs(conn, missing)
        out: list[Created] = []
        for r, deadline in zip(runs, deadlines, strict=True):
            if r.run_id in created:
                out.append(Created(r.run_id, True, _leased(r, now, deadline)))
            elif r.run_id in by_id:
                out.append(Created(r.run_id, False))
            elif r.idempotency_key is not None and (r.workflow, r.idempotency_key) in by_key:
                out.append(Created(by_key[r.workflow, r.idempotency_key], False))
            else:  # pragma: no cover - a conflicting row vanished between the statements
                out.append(Created((await self.create_run(r, now))[0], False))
        return out

    async def get_run(self, run_id: str) -> RunRecord | None:
        query = f"SELECT {_RUN_COLS} FROM runs WHERE id = $1"  # noqa: S608 - constant columns
        row = await self.pool.fetchrow(query, run_id)
        if row is None:  # finished long ago, perhaps (pg_archive: why runs first)
            row = await self.pool.fetchrow(pg_archive.GET_ARCHIVED, run_id)
        return None if row is None else _record(row)

    async def load_events(self, run_id: str) -> list[Event]:
        rows = await self.pool.fetch(
            "SELECT seq, pos, kind, name, payload, created_at FROM events WHERE run_id = $1"
            " ORDER BY seq",
            run_id,
        )
        # Columns in Event's field order: positional construction keeps replay loads fast.
        return [Event(*r) for r in rows]

    async def get_run_and_events(self, run_id: str) -> tuple[RunRecord, list[Event]] | None:
        if self._record_arrays:
            try:
                row = await self.pool.fetchrow(_RUN_AND_EVENTS, run_id)
                if row is None:
                    row = await self.pool.fetchrow(_ARCHIVED_RUN_AND_EVENTS, run_id)
            except asyncpg.FeatureNotSupportedError:
                self._record_arrays = False
            else:
                return None if row is None else _run_and_events(row)
        run = await self.get_run(run_id)
        return None if run is None else (run, await self.load_events(run_id))

    async def list_runs(
        self,
        *,
        workflow: str | None,
        status: str | None,
        limit: int,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[RunRecord]:
        # Only the filters given become conditions (constant SQL fragments, values bound
        # as parameters), so each query shape gets a plan that uses its index.
        where: list[str] = []
        args: list[Any] = []

        def bind(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if workflow is not None:
            where.append(f"workflow = {bind(workflow)}")
        if status is not None:
            where.append(f"status = {bind(status)}")
        if parent_run_id is not None:
            where.append(f"parent_run_id = {bind(parent_run_id)}")
        if tags:
            where.append(f"tags @> {bind(msgspec.json.encode(tags).decode())}::jsonb")
        if before is not None:
            where.append(f"(created_at, id) < ({bind(before[0])}, {bind(before[1])})")
        cond = " WHERE " + " AND ".join(where) if where else ""
        order = f" ORDER BY created_at DESC, id DESC LIMIT {bind(limit)}"
        rows = await self.pool.fetch(f"SELECT {_RUN_COLS} FROM runs{cond}{order}", *args)  # noqa: S608
        # The archive holds only finished runs created before the horizon: a full page
        # that stops short of it needs no second read (pg_archive).
        if (status is None or status in TERMINAL) and (
            len(rows) < limit or rows[-1]["created_at"] < pg_archive.list_horizon()
        ):
            older = await self.pool.fetch(
                f"SELECT {_RUN_COLS} FROM runs_archive{cond}{order}",  # noqa: S608
                *args,
            )
            if older:
                rows = sorted([*rows, *older], key=_newest_first, reverse=True)[:limit]
        return [_record(r) for r in rows]

    # -- executing --------------------------------------------------------------------

    async def claim(
        self,
        *,
        owner: str,
        keys: Sequence[tuple[str, str]],
        limit: int,
        now: datetime,
        lease_s: float,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedRun]:
        if limit <= 0 or not keys:
            return []
        # SKIP LOCKED lets many workers claim concurrently without blocking on each
        # other; bumping `fence` makes every write of a previous holder fail.
        rows = await self._claim_fetch(
            "WITH c AS ("
            " SELECT id, started_at AS first,"
            "  CASE WHEN status = 'running' THEN lease_owner END AS taken_from FROM runs"
            " WHERE ((status IN ('pending', 'suspended') AND ready_at <= $1)"
            "        OR (status = 'running' AND lease_until < $1))"
            # Queued runs start only through claim_queue (their limits); the partial
            # index runs_ready (migration 0006) holds unqueued runs only.
            "   AND queue IS NULL"
            "   AND (workflow, version) IN (SELECT * FROM unnest($2::text[], $3::text[]))"
            "   AND NOT (id = ANY($6::text[]))"
            " ORDER BY ready_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " UPDATE runs r SET status = 'running', lease_owner = $5,"
            "  lease_until = $1 + make_interval(secs => $7), fence = r.fence + 1,"
            "  started_at = coalesce(r.started_at, $1), updated_at = $1"
            " FROM c WHERE r.id = c.id"
            " RETURNING r.id, r.workflow, r.version, r.input, r.fence, r.wakeups,"
            "  r.parent_run_id, r.started_at, r.deadline, c.first IS NULL AS fresh,"
            "  c.taken_from",
            now,
            [k[0] for k in keys],
            [k[1] for k in keys],
            limit,
            owner,
            list(exclude),
            lease_s,
        )
        return [_claimed(r) for r in rows]

    async def commit(self, batch: Batch) -> BatchResult:
        """Write one group commit, retrying when PostgreSQL picked it as a deadlock victim."""
        for attempt in range(3):
            try:
                return await self._commit_once(batch)
            except asyncpg.exceptions.DeadlockDetectedError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _commit_once(self, batch: Batch) -> BatchResult:
        """Write one group commit through `durable_commit_packed` (0008): one round trip.

        The function locks the batch's runs in id order and keeps each run's writes only
        if its fence still matches and it is still running, so a worker that lost its
        lease writes nothing without failing anyone else's rows.
        """
        rows = await self._commits.fetch(COMMIT_SQL, *commit_args(batch, self.channel))
        return commit_result(rows)

    async def release(self, owner: str, run_ids: Sequence[str], now: datetime) -> None:
        if not run_ids:
            return
        await self.pool.execute(
            "UPDATE runs r SET lease_owner = NULL, lease_until = NULL, ready_at = $3, updated_at = $3,"
            " status = CASE WHEN EXISTS (SELECT 1 FROM events e WHERE e.run_id = r.id)"
            "  THEN 'suspended' ELSE 'pending' END"
            " WHERE r.id = ANY($1::text[]) AND r.lease_owner = $2 AND r.status = 'running'",
            list(run_ids),
            owner,
            now,
        )

    async def _lock_owned(self, conn: asyncpg.Connection, run_id: str, fence: int) -> None:
        row = await conn.fetchrow(
            "SELECT fence, status FROM runs WHERE id = $1 FOR NO KEY UPDATE", run_id
        )
        if row is None or row["fence"] != fence or row["status"] != RunStatus.RUNNING:
            raise FenceLost(f"run {run_id!r} is no longer held by this worker")

    async def take_message(
        self,
        run_id: str,
        fence: int,
        kind: str,
        name: str,
        make_event: Callable[[bytes | None], Event],
        now: datetime,
    ) -> tuple[bool, bytes | None]:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_owned(conn, run_id, fence)
            row = await conn.fetchrow(
                "DELETE FROM inbox WHERE id = (SELECT id FROM inbox WHERE run_id = $1 AND kind = $2"
                " AND name = $3 ORDER BY id LIMIT 1) RETURNING payload",
                run_id,
                kind,
                name,
            )
            if row is None:
                return False, None
            payload: bytes | None = row["payload"]
            await _insert_events(conn, [run_id], [make_event(payload)])
            return True, payload

    async def start_child(
        self, run_id: str, fence: int, event: Event, child: NewRun, now: datetime
    ) -> str:
        deadline = (
            now + timedelta(seconds=child.deadline_s) if child.deadline_s is not None else None
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_owned(conn, run_id, fence)
            await conn.execute(
                "INSERT INTO runs (id, workflow, version, status, input, parent_run_id,"
                " ready_at, deadline, created_at, updated_at, queue, queue_key, priority)"
                " VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $6, $6, $8, $9, $10)"
                " ON CONFLICT DO NOTHING",
                child.run_id,
                child.workflow,
                child.version,
                child.input,
                run_id,
                now,
                deadline,
                child.queue,
                child.queue_key,
                child.priority,
            )
            await _insert_events(conn, [run_id], [event])
            await conn.execute("SELECT pg_notify($1, $2)", self.channel, NOTICE_WAKE)
        return child.run_id

    async def child_outcome(self, run_id: str) -> ChildOutcome | None:
        # Follow continue-as-new to the chain's newest run: a child that continued is
        # finished only when its last run is.
        row = await self.pool.fetchrow(
            "WITH RECURSIVE chain AS ("
            " SELECT id, status, output, error, continued_as, 0 AS depth FROM runs WHERE id = $1"
            " UNION ALL SELECT r.id, r.status, r.output, r.error, r.continued_as, c.depth + 1"
            " FROM runs r JOIN chain c ON r.id = c.continued_as)"
            " SELECT id, status, output, error, continued_as FROM chain"
            " ORDER BY depth DESC LIMIT 1",
            run_id,
        )
        if row is None or row["continued_as"] is not None:
            # The chain (or its start) reaches into the archive: follow it link by link.
            row = await self._follow_archived(row["continued_as"] if row else run_id)
            if row is None:
                return None
        followed = None if row["id"] == run_id else row["id"]
        return ChildOutcome(
            status=row["status"], output=row["output"], error=row["error"], run_id=followed
        )

    async def _follow_archived(self, run_id: str) -> asyncpg.Record | None:
        last = None
        cols = "id, status, output, error, continued_as"
        while run_id is not None:
            row = await self.pool.fetchrow(
                f"SELECT {cols} FROM runs WHERE id = $1"  # noqa: S608 - constant columns
                f" UNION ALL SELECT {cols} FROM runs_archive WHERE id = $1 LIMIT 1",
                run_id,
            )
            if row is None:
                break
            last, run_id = row, row["continued_as"]
        return last

    async def create_hook(
        self,
        run_id: str,
        fence: int,
        event: Event,
        token: str,
        name: str,
        now: datetime,
        metadata: bytes | None = None,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_owned(conn, run_id, fence)
            await conn.execute(
                "INSERT INTO hooks (token, run_id, name, created_at, metadata)"
                " VALUES ($1, $2, $3, $4, $5)",
                token,
                run_id,
                name,
                now,
                metadata,
            )
            await _insert_events(conn, [run_id], [event])

    # -- outside input ----------------------------------------------------------------

    async def _deliver(
        self,
        conn: asyncpg.Connection,
        run_id: str,
        kind: str,
        name: str,
        key: str,
        payload: bytes,
        now: datetime,
    ) -> None:
        await conn.execute(
            "INSERT INTO inbox (run_id, kind, name, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
            run_id,
            kind,
            name,
            payload,
            now,
        )
        # Bumping `wakeups` even while the run is held lets its worker notice the delivery
        # when it suspends (see commit); ready_at wakes it only if it waits for this key.
        await conn.execute(
            "UPDATE runs SET wakeups = wakeups + 1,"
            " ready_at = CASE WHEN status IN ('pending', 'suspended') AND $2 = ANY(waiting_on)"
            "  THEN $3 ELSE ready_at END"
            " WHERE id = $1",
            run_id,
            key,
            now,
        )
        await conn.execute("SELECT pg_notify($1, $2)", self.channel, NOTICE_WAKE)

    async def signal(self, run_id: str, name: str, payload: bytes, now: datetime) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_open(conn, run_id)
            await self._deliver(conn, run_id, "signal", name, signal_key(name), payload, now)

    async def execute_hook(self, token: str, payload: bytes, now: datetime) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT run_id, name, used_at, as_signal FROM hooks WHERE token = $1 FOR UPDATE",
                token,
            )
            if row is None:
                raise RunNotFound("no hook with that token")
            run_id: str = row["run_id"]
            if row["used_at"] is not None:
                raise RunClosed(f"the hook of run {run_id!r} was already used")
            await self._lock_open(conn, run_id)
            await conn.execute("UPDATE hooks SET used_at = $2 WHERE token = $1", token, now)
            if row["as_signal"]:  # created from outside: delivered as the signal `name`
                name = row["name"]
                await self._deliver(conn, run_id, "signal", name, signal_key(name), payload, now)
            else:
                await self._deliver(conn, run_id, "hook", token, hook_key(token), payload, now)
            return run_id

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` finished runs that ended before `before`, with their history.

        Runs whose parent is still unfinished are kept: the parent may still read them.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT r.id FROM runs r"
                    " WHERE r.status IN ('completed', 'failed', 'cancelled')"
                    "  AND r.finished_at < $1"
                    "  AND NOT EXISTS (SELECT 1 FROM runs p WHERE p.id = r.parent_run_id"
                    "   AND p.status NOT IN ('completed', 'failed', 'cancelled'))"
                    " ORDER BY r.finished_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                    before,
                    limit,
                )
            ]
            if ids:
                await conn.execute("DELETE FROM events WHERE run_id = ANY($1::text[])", ids)
                await conn.execute("DELETE FROM inbox WHERE run_id = ANY($1::text[])", ids)
                await conn.execute("DELETE FROM hooks WHERE run_id = ANY($1::text[])", ids)
                await conn.execute("DELETE FROM run_events WHERE run_id = ANY($1::text[])", ids)
                await conn.execute("DELETE FROM runs WHERE id = ANY($1::text[])", ids)
            return len(ids)

    async def next_ready_at(self, keys: Sequence[tuple[str, str]]) -> datetime | None:
        if not keys:
            return None
        value: Any = await self.pool.fetchval(
            "SELECT least("
            # Two subqueries, one per partial index (unqueued / queued runs).
            " (SELECT min(ready_at) FROM runs WHERE status IN ('pending', 'suspended')"
            "   AND queue IS NULL"
            "   AND (workflow, version) IN (SELECT * FROM unnest($1::text[], $2::text[]))),"
            " (SELECT min(ready_at) FROM runs WHERE status IN ('pending', 'suspended')"
            "   AND queue IS NOT NULL"
            "   AND (workflow, version) IN (SELECT * FROM unnest($1::text[], $2::text[]))),"
            " (SELECT min(lease_until) FROM runs WHERE status = 'running'"
            "   AND (workflow, version) IN (SELECT * FROM unnest($1::text[], $2::text[]))))",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return value if isinstance(value, datetime) else None


if TYPE_CHECKING:

    def _implements_store(store: PostgresStore) -> Store:
        return store  # mypy checks PostgresStore against the Store protocol here
