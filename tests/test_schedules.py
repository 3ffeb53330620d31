"""Schedules: fire-time math (seconds, DST), and on both stores (PostgreSQL and memory):
exactly-once ticks across workers, pause/resume, removal from code, catch-up and crash
recovery; across worker processes on PostgreSQL.

Run as a script (`python tests/test_schedules.py DSN SCHEMA EVAL_LOG`) it is a worker
process for the multi-process test.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
import pytest

from durable import Context, DurableError, Runtime, Schedule, ValidationError, workflow
from durable.schedules import (
    Cron,
    ScheduleInfo,
    ScheduleNotFound,
    Scheduler,
    cron_for,
)
from durable.store.memory import MemoryStore

THIS = Path(__file__).resolve()
ROOT = THIS.parents[1]
NY = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def fires(expression: str, tz: str, start: datetime, n: int) -> list[datetime]:
    cron, t, out = Cron(expression, tz), start, []
    for _ in range(n):
        t = cron.next_after(t)
        out.append(t)
    return out


def tick_of(key: str) -> datetime:
    """The fire time encoded in a schedule idempotency key `schedule:{name}:{iso}`."""
    assert key.startswith("schedule:")
    # the name may contain ':' itself; the timestamp is the last 25 characters
    return datetime.fromisoformat(key[-25:])


# -- fire-time math (no database) ------------------------------------------------------


def test_five_fields_and_six_with_seconds_first() -> None:
    start = utc(2026, 1, 1, 0, 0, 3) + timedelta(microseconds=500_000)
    assert fires("*/5 * * * * *", "UTC", start, 3) == [
        utc(2026, 1, 1, 0, 0, 5),
        utc(2026, 1, 1, 0, 0, 10),
        utc(2026, 1, 1, 0, 0, 15),
    ]
    assert fires("30 15 10 * * *", "UTC", start, 2) == [
        utc(2026, 1, 1, 10, 15, 30),
        utc(2026, 1, 2, 10, 15, 30),
    ]
    assert fires("*/15 * * * *", "UTC", start, 2) == [
        utc(2026, 1, 1, 0, 15),
        utc(2026, 1, 1, 0, 30),
    ]
    # strictly after: a fire time equal to `after` is not returned again
    assert Cron("0 9 * * *", "UTC").next_after(utc(2026, 1, 1, 9)) == utc(2026, 1, 2, 9)


def test_schedule_validation_and_next_fire() -> None:
    for bad in ("", "* * * *", "* * * * * * *", "61 * * * *", "nope"):
        with pytest.raises(ValidationError):
            Schedule(bad)
    with pytest.raises(ValidationError):
        Schedule("* * * * *", timezone="Mars/Olympus_Mons")
    s = Schedule("0 9 * * *", timezone="Europe/Paris")
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer
    assert s.next_fire(utc(2026, 1, 10)) == utc(2026, 1, 10, 8)
    assert s.next_fire(utc(2026, 7, 10)) == utc(2026, 7, 10, 7)
    # no own timezone: the one passed (the runtime's) applies, UTC by default
    assert Schedule("0 9 * * *").next_fire(utc(2026, 1, 10)) == utc(2026, 1, 10, 9)
    assert Schedule("0 9 * * *").next_fire(utc(2026, 1, 10), "Asia/Tokyo") == utc(2026, 1, 11, 0)


def test_dst_spring_forward_fires_once_at_shifted_time() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT: 02:30 does not exist that night.
    got = fires("30 2 * * *", NY, utc(2026, 3, 6), 4)
    assert got == [
        utc(2026, 3, 6, 7, 30),  # 02:30 EST
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 8, 7, 30),  # the skipped 02:30 fires at 03:30 EDT, once
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]
    local = [t.astimezone(ZoneInfo(NY)).strftime("%d %H:%M") for t in got]
    assert local == ["06 02:30", "07 02:30", "08 03:30", "09 02:30"]
    # two skipped wall times stay two distinct fires
    assert fires("0,30 2 * * *", NY, utc(2026, 3, 8, 6, 59), 3) == [
        utc(2026, 3, 8, 7),
        utc(2026, 3, 8, 7, 30),
        utc(2026, 3, 9, 6),
    ]
    # an interval expression just continues on the new wall clock
    assert fires("*/30 * * * *", NY, utc(2026, 3, 8, 6, 15), 3) == [
        utc(2026, 3, 8, 6, 30),  # 01:30 EST
        utc(2026, 3, 8, 7),  # 03:00 EDT
        utc(2026, 3, 8, 7, 30),
    ]


def test_dst_fall_back_fires_each_wall_time_once() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST: 01:00-01:59 happens twice.
    assert fires("30 2 * * *", NY, utc(2026, 10, 30), 4) == [
        utc(2026, 10, 30, 6, 30),  # 02:30 EDT
        utc(2026, 10, 31, 6, 30),
        utc(2026, 11, 1, 7, 30),  # 02:30 EST, once
        utc(2026, 11, 2, 7, 30),
    ]
    # a fixed time inside the repeated hour fires at its first occurrence only
    assert fires("30 1 * * *", NY, utc(2026, 10, 31), 3) == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT; not again at 01:30 EST
        utc(2026, 11, 2, 6, 30),
    ]
    # ... also when computed from inside the second occurrence (e.g. after a resume)
    assert Cron("30 1 * * *", NY).next_after(utc(2026, 11, 1, 6, 10)) == utc(2026, 11, 2, 6, 30)
    # an interval expression keeps its real-time interval through the repeated hour
    assert fires("*/30 * * * *", NY, utc(2026, 11, 1, 4, 45), 6) == [
        utc(2026, 11, 1, 5),  # 01:00 EDT
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 6),  # 01:00 EST
        utc(2026, 11, 1, 6, 30),
        utc(2026, 11, 1, 7),  # 02:00 EST
        utc(2026, 11, 1, 7, 30),
    ]


def test_latest_fire_for_catch_up() -> None:
    cron = Cron("*/1 * * * * *", "UTC")
    now = utc(2026, 5, 5, 12, 0, 0) + timedelta(milliseconds=700)
    assert cron.latest_fire(now - timedelta(minutes=10), now) == utc(2026, 5, 5, 12)
    daily = Cron("30 2 * * *", NY)
    assert daily.latest_fire(utc(2026, 3, 1, 7, 30), utc(2026, 3, 8, 7, 45)) == utc(
        2026, 3, 8, 7, 30
    )
    assert daily.latest_fire(utc(2026, 3, 1, 7, 30), utc(2026, 3, 8, 7, 15)) == utc(
        2026, 3, 7, 7, 30
    )
    # nothing after the due time: the due time itself fires
    due = utc(2026, 3, 8, 7, 30)
    assert daily.latest_fire(due, due + timedelta(hours=3)) == due
    assert cron_for("30 2 * * *", NY) is cron_for("30 2 * * *", NY)


# -- on both stores --------------------------------------------------------------------


@pytest.fixture
def make_rt(backend: Any) -> Callable[..., Runtime]:
    def make(*workflows: Any, **options: Any) -> Runtime:
        options.setdefault("poll_interval", "100ms")
        options.setdefault("shutdown_grace", "2s")
        return backend.runtime(*workflows, **options)

    return make


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


class Tables:
    """Reach under the API to rewind schedules and list the runs they started, on either
    store: SQL on PostgreSQL, the MemoryStore's own rows on memory."""

    def __init__(self, memory: MemoryStore | None, db: asyncpg.Connection | None) -> None:
        self.memory = memory
        self.db = db

    async def set_schedules(self, name: str | None = None, **fields: Any) -> None:
        """Overwrite fields of every schedule (or of the one named)."""
        if self.memory is not None:
            rows = self.memory._schedules
            for key in [k for k in rows if name is None or k == name]:
                rows[key] = msgspec.structs.replace(rows[key], **fields)
            return
        assert self.db is not None
        cols = list(fields)
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=1))
        where = f" WHERE name = ${len(cols) + 1}" if name is not None else ""
        args = [fields[c] for c in cols] + ([name] if name is not None else [])
        await self.db.execute(f"UPDATE schedules SET {sets}{where}", *args)

    async def schedule_runs(self) -> list[tuple[str, str]]:
        """(run id, idempotency key) of every run a schedule started, by key."""
        if self.memory is not None:
            runs = self.memory._runs.values()
            found = [
                (r.id, r.idempotency_key)
                for r in runs
                if r.idempotency_key is not None and r.idempotency_key.startswith("schedule:")
            ]
            return sorted(found, key=lambda p: p[1])
        assert self.db is not None
        rows = await self.db.fetch(
            "SELECT id, idempotency_key FROM runs WHERE idempotency_key LIKE 'schedule:%'"
            " ORDER BY idempotency_key"
        )
        return [(r["id"], r["idempotency_key"]) for r in rows]


@pytest.fixture
async def tables(backend: Any, request: pytest.FixtureRequest) -> Any:
    if backend.is_memory:
        yield Tables(backend.memory, None)
        return
    dsn = request.getfixturevalue("dsn")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": backend.schema})
    try:
        yield Tables(None, conn)
    finally:
        await conn.close()


async def pending_fire_at(rt: Runtime) -> datetime | None:
    (row,) = await rt.store.list_schedules()
    return row.pending_fire_at


async def test_default_names_timezones_and_listing(make_rt: Callable[..., Runtime]) -> None:
    @workflow(
        name="report",
        schedules=[
            Schedule("0 9 * * *"),
            Schedule("*/5 * * * * *", name="fast", timezone="Asia/Tokyo"),
        ],
    )
    async def report(ctx: Context, inp: Any) -> Any:
        return inp

    async with make_rt(report, timezone="Europe/Paris") as rt:
        before = datetime.now(UTC)
        infos = await rt.list_schedules()
        assert all(isinstance(i, ScheduleInfo) for i in infos)
        by_name = {i.name: i for i in infos}
        assert sorted(by_name) == ["fast", "report[0 9 * * *]"]
        daily = by_name["report[0 9 * * *]"]
        assert (daily.workflow, daily.expression, daily.timezone) == (
            "report",
            "0 9 * * *",
            "Europe/Paris",
        )
        assert daily.active and not daily.paused and daily.last_fired_at is None
        assert daily.next_fire_at == Cron("0 9 * * *", "Europe/Paris").next_after(before)
        assert by_name["fast"].timezone == "Asia/Tokyo"
        assert before < by_name["fast"].next_fire_at <= before + timedelta(seconds=6)


async def test_two_schedules_with_one_name_is_an_error(make_rt: Callable[..., Runtime]) -> None:
    @workflow(name="a", schedules=[Schedule("0 9 * * *", name="same")])
    async def a(ctx: Context, inp: Any) -> None:
        return None

    @workflow(name="b", schedules=[Schedule("0 10 * * *", name="same")])
    async def b(ctx: Context, inp: Any) -> None:
        return None

    with pytest.raises(ValidationError, match="same"):
        async with make_rt(a, b):
            pass


async def test_input_callable_is_evaluated_at_fire_time(
    make_rt: Callable[..., Runtime], tables: Tables
) -> None:
    calls: list[float] = []

    def make_input() -> dict[str, Any]:
        calls.append(time.time())
        return {"n": len(calls), "at": calls[-1]}

    async def async_input() -> str:
        return "from a coroutine"

    @workflow(
        name="echo",
        schedules=[
            Schedule("0 0 1 1 *", name="sync-input", input=make_input),
            Schedule("0 0 1 1 *", name="async-input", input=async_input),
            Schedule("0 0 1 1 *", name="plain-input", input={"fixed": [1, 2]}),
        ],
    )
    async def echo(ctx: Context, inp: Any) -> Any:
        return inp

    async with make_rt(echo, worker=False) as rt:
        scheduler = Scheduler(rt)
        await scheduler.sync()
        assert calls == []  # declaring and registering evaluates nothing
        await tables.set_schedules(next_fire_at=ago(hours=1))
        t0 = time.time()
        assert await scheduler.tick() == 3
        assert len(calls) == 1 and calls[0] >= t0
        inputs = {}
        for run_id, key in await tables.schedule_runs():
            inputs[key.split(":")[1]] = (await rt.get_run(run_id)).input
        assert inputs["sync-input"] == {"n": 1, "at": calls[0]}
        assert inputs["async-input"] == "from a coroutine"
        assert inputs["plain-input"] == {"fixed": [1, 2]}
        assert await scheduler.tick() == 0
        assert len(calls) == 1


async def test_catch_up_fires_only_the_latest_missed_tick(
    make_rt: Callable[..., Runtime], tables: Tables
) -> None:
    @workflow(name="every_second", schedules=[Schedule("*/1 * * * * *", input="tick")])
    async def every_second(ctx: Context, inp: Any) -> Any:
        return inp

    async with make_rt(every_second, worker=False) as rt:
        await Scheduler(rt).sync()
        await tables.set_schedules(next_fire_at=ago(minutes=10))
        before = datetime.now(UTC)
        assert await Scheduler(rt).tick() == 1
        after = datetime.now(UTC)
        runs = await tables.schedule_runs()
        assert len(runs) == 1  # not ~600
        fired = tick_of(runs[0][1])
        assert before - timedelta(seconds=1) < fired <= after
        (info,) = await rt.list_schedules()
        assert info.last_fired_at == fired
        assert info.next_fire_at > fired and info.next_fire_at >= before


async def test_sweep_fires_due_schedules_without_a_worker(
    make_rt: Callable[..., Runtime], tables: Tables
) -> None:
    @workflow(name="nightly", schedules=[Schedule("0 3 * * *", input={"x": 1})])
    async def nightly(ctx: Context, inp: Any) -> Any:
        return {"got": inp}

    async with make_rt(nightly, worker=False) as rt:
        assert await rt.sweep() == 0  # registers the schedule; nothing due yet
        assert [i.name for i in await rt.list_schedules()] == ["nightly[0 3 * * *]"]
        await tables.set_schedules(next_fire_at=ago(minutes=10))
        await rt.sweep()
        runs = await tables.schedule_runs()
        assert len(runs) == 1
        info = await rt.get_run(runs[0][0])
        assert info.workflow == "nightly"
        assert info.status == "completed", info
        assert info.output == {"got": {"x": 1}}
        await rt.sweep()
        assert len(await tables.schedule_runs()) == 1


async def test_concurrent_ticks_claim_a_tick_exactly_once(
    make_rt: Callable[..., Runtime], tables: Tables
) -> None:
    evaluations: list[int] = []

    def evaluate() -> int:
        evaluations.append(1)
        return len(evaluations)

    @workflow(name="yearly", schedules=[Schedule("0 0 1 1 *", input=evaluate)])
    async def yearly(ctx: Context, inp: Any) -> Any:
        return inp

    async with make_rt(yearly, worker=False) as rt1, make_rt(yearly, worker=False) as rt2:
        await Scheduler(rt1).sync()
        for _ in range(5):
            await tables.set_schedules(next_fire_at=ago(hours=1))
            schedulers = [Scheduler(rt) for rt in (rt1, rt2) for _ in range(8)]
            results = await asyncio.gather(*(s.tick() for s in schedulers))
            assert sum(results) == 1
        # only the claim winner evaluated the input and triggered: 5 rounds, 5 runs
        assert len(evaluations) == 5
        assert len(await tables.schedule_runs()) == 5


async def test_stale_claim_is_retriggered_once(
    make_rt: Callable[..., Runtime], tables: Tables
) -> None:
    @workflow(name="job", schedules=[Schedule("0 0 1 1 *", name="job")])
    async def job(ctx: Context, inp: Any) -> Any:
        return inp

    async with make_rt(job, worker=False) as rt:
        scheduler = Scheduler(rt)
        await scheduler.sync()
        tick = utc(2026, 1, 1)
        # a process claimed the tick, then died before starting the run
        await tables.set_schedules(pending_fire_at=tick, last_fired_at=tick, claimed_at=ago())
        assert await scheduler.tick() == 0  # a fresh claim belongs to its (live) owner
        await tables.set_schedules(claimed_at=ago(minutes=1))
        assert await scheduler.tick() == 1
        assert [k for _, k in await tables.schedule_runs()] == [f"schedule:job:{tick.isoformat()}"]
        assert await pending_fire_at(rt) is None
        # the owner actually created the run before dying: re-triggering starts nothing
        await tables.set_schedules(pending_fire_at=tick, claimed_at=ago(minutes=1))
        assert await scheduler.tick() == 0
        assert len(await tables.schedule_runs()) == 1
        assert await pending_fire_at(rt) is None


async def test_pause_stops_firing_and_resume_restarts_without_backlog(
    make_rt: Callable[..., Runtime], tables: Tables
) -> None:
    @workflow(name="beat", schedules=[Schedule("*/1 * * * * *", name="beat")])
    async def beat(ctx: Context, inp: Any) -> Any:
        return "ok"

    async with make_rt(beat) as rt:

        async def count() -> int:
            return len(await tables.schedule_runs())

        async with asyncio.timeout(10):
            while await count() < 2:
                await asyncio.sleep(0.05)
        await rt.pause_schedule("beat")
        paused_at = datetime.now(UTC)
        (info,) = await rt.list_schedules()
        assert info.paused
        await asyncio.sleep(0.3)  # a tick claimed just before the pause may still land
        frozen = await count()
        await asyncio.sleep(2.5)
        assert await count() == frozen
        await rt.resume_schedule("beat")
        resumed_at = datetime.now(UTC)
        (info,) = await rt.list_schedules()
        assert not info.paused
        assert resumed_at < info.next_fire_at <= resumed_at + timedelta(seconds=1)
        await asyncio.sleep(2.6)
        keys = [k for _, k in await tables.schedule_runs()]
        assert 2 <= len(keys) - frozen <= 4
        ticks = [tick_of(k) for k in keys]
        # nothing fired for the paused window, not even on resume
        assert not [t for t in ticks if paused_at + timedelta(seconds=0.3) < t <= resumed_at]
        await rt.pause_schedule("beat")
        await rt.resume_schedule("beat")
        await rt.resume_schedule("beat")  # resuming a running schedule is a no-op
        with pytest.raises(ScheduleNotFound) as excinfo:
            await rt.pause_schedule("no-such-schedule")
        assert isinstance(excinfo.value, LookupError)
        assert isinstance(excinfo.value, DurableError)
        with pytest.raises(ScheduleNotFound):
            await rt.resume_schedule("no-such-schedule")


async def test_pause_survives_restart_and_redefinition(
    make_rt: Callable[..., Runtime], tables: Tables
) -> None:
    def wf(expr: str) -> Any:
        @workflow(name="rep", schedules=[Schedule(expr, name="rep")])
        async def rep(ctx: Context, inp: Any) -> None:
            return None

        return rep

    async with make_rt(wf("0 9 * * *"), worker=False) as rt:
        await Scheduler(rt).sync()
        await rt.pause_schedule("rep")
        (first,) = await rt.list_schedules()
    async with make_rt(wf("0 9 * * *")) as rt:  # unchanged: nothing rewritten
        (same,) = await rt.list_schedules()
        assert same == first
    before = datetime.now(UTC)
    async with make_rt(wf("0 10 * * *")) as rt:  # changed: new expression, still paused
        (changed,) = await rt.list_schedules()
        assert changed.expression == "0 10 * * *"
        assert changed.paused
        assert changed.next_fire_at == Cron("0 10 * * *", "UTC").next_after(before)


async def test_schedule_removed_from_code_becomes_inactive(
    make_rt: Callable[..., Runtime], tables: Tables
) -> None:
    def wf(*schedules: Schedule) -> Any:
        @workflow(name="w", schedules=list(schedules))
        async def w(ctx: Context, inp: Any) -> None:
            return None

        return w

    @workflow(name="other", schedules=[Schedule("0 12 * * *", name="other")])
    async def other(ctx: Context, inp: Any) -> None:
        return None

    async with make_rt(wf(Schedule("0 9 * * *"), Schedule("0 10 * * *", name="ten")), other):
        pass
    async with make_rt(wf(Schedule("0 10 * * *", name="ten")), other) as rt:
        state = {i.name: i.active for i in await rt.list_schedules()}
        assert state == {"w[0 9 * * *]": False, "ten": True, "other": True}
        # an inactive schedule never fires, even when overdue
        await tables.set_schedules("w[0 9 * * *]", next_fire_at=ago(minutes=1))
        assert await Scheduler(rt).tick() == 0
        assert await tables.schedule_runs() == []
    # a process that does not register workflow "w" leaves its schedules alone
    async with make_rt(other) as rt:
        state = {i.name: i.active for i in await rt.list_schedules()}
        assert state == {"w[0 9 * * *]": False, "ten": True, "other": True}
    # declared again: active again, restarting from now (the overdue tick is dropped)
    async with make_rt(wf(Schedule("0 9 * * *")), other, worker=False) as rt:
        start = datetime.now(UTC)
        assert await Scheduler(rt).tick() == 0
        state = {i.name: i for i in await rt.list_schedules()}
        assert state["w[0 9 * * *]"].active and not state["ten"].active
        assert state["w[0 9 * * *]"].next_fire_at > start
        assert await tables.schedule_runs() == []


async def test_workflows_registered_later_have_their_schedules_fired(
    make_rt: Callable[..., Runtime], tables: Tables
) -> None:
    @workflow(name="first", schedules=[Schedule("0 0 1 1 *", name="first")])
    async def first(ctx: Context, inp: Any) -> None:
        return None

    @workflow(name="late", schedules=[Schedule("*/1 * * * * *", name="late")])
    async def late(ctx: Context, inp: Any) -> str:
        return "late"

    async with make_rt(first) as rt:
        rt.register(late)
        async with asyncio.timeout(5):
            while not await tables.schedule_runs():
                await asyncio.sleep(0.05)
        assert {i.name for i in await rt.list_schedules()} == {"first", "late"}
        assert all(k.startswith("schedule:late:") for _, k in await tables.schedule_runs())


# -- several worker processes ------------------------------------------------------------


def _eval_log_input() -> dict[str, Any]:
    path = os.environ["SCHEDULE_EVAL_LOG"]
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return {"pid": os.getpid(), "at": time.time()}


@workflow(
    name="ticker", schedules=[Schedule("*/1 * * * * *", name="ticker", input=_eval_log_input)]
)
async def ticker(ctx: Context, inp: Any) -> Any:
    return inp


async def _worker_main(dsn: str, schema: str) -> None:
    async with Runtime(dsn, schema=schema, workflows=[ticker], poll_interval="100ms"):
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


@pytest.mark.slow
async def test_each_tick_fires_exactly_once_across_worker_processes(
    dsn: str, schema: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    eval_log = tmp_path / "evaluations.log"
    eval_log.touch()
    # create the tables first, so both workers race on ticks rather than on migrations
    async with Runtime(dsn, schema=schema, worker=False):
        pass
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEDULE_EVAL_LOG": str(eval_log)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(THIS), dsn, schema, cwd=ROOT, stdout=PIPE, env=env
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 30)
            assert line.strip() == b"ready"
        started = datetime.now(UTC)
        await asyncio.sleep(4.2)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            await asyncio.wait_for(p.wait(), 20)
        stopped = datetime.now(UTC)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    assert [p.returncode for p in procs] == [0, 0]

    rows = await db.fetch(
        "SELECT idempotency_key, count(*) AS n FROM runs WHERE workflow = 'ticker'"
        " GROUP BY idempotency_key ORDER BY idempotency_key"
    )
    assert rows and all(r["n"] == 1 for r in rows)
    ticks = [tick_of(r["idempotency_key"]) for r in rows]
    # one run per second, no tick missing in between, none doubled
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(ticks))
    assert 3 <= len(ticks) <= 7, ticks
    assert started - timedelta(seconds=2) <= ticks[0] and ticks[-1] <= stopped
    # only claim winners evaluated the input: one evaluation per run, never more
    evaluations = eval_log.read_text().split()
    assert len(evaluations) == len(ticks)
    assert set(evaluations) <= {str(p.pid) for p in procs}
    completed = await db.fetchval(
        "SELECT count(*) FROM runs WHERE workflow = 'ticker' AND status = 'completed'"
    )
    assert completed >= len(ticks) - 2


if __name__ == "__main__":
    asyncio.run(_worker_main(sys.argv[1], sys.argv[2]))
