"""While the database is down each component logs one WARNING, and one INFO once back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from durable import Context, Runtime, Schedule, workflow
from durable.errors import RunNotFound
from durable.outage import Outage, transient_error
from durable.store.base import ClaimedRun, ScheduleRow, WorkerInfo
from durable.store.memory import MemoryStore
from durable.store.postgres import PostgresStore


class _Down:
    """Makes the store's background calls fail while `down` is set, like an outage."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("connection refused (simulated outage)")


class FlakyMemory(_Down, MemoryStore):
    async def claim(self, **kw: Any) -> list[ClaimedRun]:
        self._check()
        return await super().claim(**kw)

    async def record_worker(self, worker: WorkerInfo, now: datetime) -> None:
        self._check()
        await super().record_worker(worker, now)

    async def due_schedules(self, names: Sequence[str], now: datetime) -> list[ScheduleRow]:
        self._check()
        return await super().due_schedules(names, now)


class FlakyPostgres(_Down, PostgresStore):
    async def claim(self, **kw: Any) -> list[ClaimedRun]:
        self._check()
        return await super().claim(**kw)

    async def record_worker(self, worker: WorkerInfo, now: datetime) -> None:
        self._check()
        await super().record_worker(worker, now)

    async def due_schedules(self, names: Sequence[str], now: datetime) -> list[ScheduleRow]:
        self._check()
        return await super().due_schedules(names, now)

    async def connect_listener(self) -> Any:
        self._check()
        return await super().connect_listener()


@workflow(schedules=[Schedule("* * * * *", name="tick")])
async def ticker(ctx: Context, _: Any) -> Any:
    return None


@pytest.mark.parametrize("kind", ["postgres", "memory"])
async def test_one_warning_per_component_per_outage(
    kind: str, dsn: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    store: FlakyMemory | FlakyPostgres
    store = FlakyMemory() if kind == "memory" else FlakyPostgres(dsn, schema=schema, pool_size=2)
    await store.open()
    caplog.set_level(logging.DEBUG, logger="durable")
    try:
        async with Runtime(
            store=store, workflows=[ticker], lease="0.3s", poll_interval="50ms"
        ) as rt:
            await asyncio.sleep(0.2)
            caplog.clear()
            store.down = True
            if isinstance(store, FlakyPostgres):
                listener: Any = rt._listener
                await listener._conn.close()  # the listener's connection drops too
            await asyncio.sleep(3.0)
            down_warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
            store.down = False
            await asyncio.sleep(2.5)
            infos = [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.INFO and "reachable again" in r.getMessage()
            ]
    finally:
        await store.close()
    components = ["claim loop", "heartbeat", "scheduler"]
    if kind == "postgres":
        components.append("listener")
    messages = [r.getMessage() for r in down_warnings]
    for component in components:
        mine = [m for m in messages if m.startswith(f"{component}: ")]
        assert len(mine) == 1, (component, messages)
        assert "database unavailable" in mine[0] and "simulated outage" in mine[0]
    # Nothing else, and no traceback, was logged at WARNING or above meanwhile.
    assert len(messages) == len(components), messages
    assert all(r.exc_info is None for r in down_warnings)
    for component in components:
        assert any(m.startswith(f"{component}: database reachable again") for m in infos), (
            component,
            infos,
        )


def test_outage_backoff_doubles_to_its_maximum(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outage = Outage("x", logging.getLogger("durable.test"), first=0.1, maximum=0.5)
    delays = [outage.failed(OSError("down")) for _ in range(5)]
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert outage.down
    outage.recovered()
    outage.recovered()
    assert not outage.down
    levels = [r.levelno for r in caplog.records]
    assert levels.count(logging.WARNING) == 1 and levels.count(logging.INFO) == 1


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation"), True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.exceptions.TooManyConnectionsError("too many clients"), True),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), True),
        (asyncpg.exceptions.InterfaceError("connection is closed"), True),
        (asyncpg.exceptions.InternalClientError("cannot switch to state 15"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (asyncpg.exceptions.UndefinedTableError('relation "runs" does not exist'), False),
        (asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"), False),
        (asyncpg.exceptions.DataError("invalid input for query argument"), False),
        (RunNotFound("no run with id 'x'"), False),
        (RuntimeError("store is not open"), False),
        (ValueError("bad"), False),
    ],
)
def test_transient_errors_are_told_from_the_others(exc: Exception, transient: bool) -> None:
    """`result()` retries exactly these (issue 16, item 7); the others are raised."""
    assert transient_error(exc) is transient
