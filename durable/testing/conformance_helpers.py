"""Helpers shared by the store conformance suite's test classes (explicit times, tiny runs)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from durable.core.events import Event, EventKind
from durable.store.base import (
    Batch,
    ClaimedRun,
    Finish,
    NewRun,
    RunRecord,
    ScheduleRow,
    Store,
    Suspend,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
WF = ("wf", "1")
KEYS = [WF]


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- helpers -----------------------------------------------------------------------------


def new_run(
    run_id: str,
    *,
    workflow: str = "wf",
    version: str = "1",
    key: str | None = None,
    parent: str | None = None,
    deadline_s: float | None = None,
    data: bytes = b"in",
) -> NewRun:
    return NewRun(run_id, workflow, version, data, T0, key, parent, deadline_s)


def ev(seq: int, kind: EventKind = EventKind.RECORDED, name: str = "x", at: float = 0) -> Event:
    return Event(seq, seq - 1, kind.value, name, f"p{seq}".encode(), t(at))


async def create(store: Store, run_id: str, at: float = 0, **kw: Any) -> None:
    created = await store.create_run(new_run(run_id, **kw), t(at))
    assert created == (run_id, True)


async def claim_one(
    store: Store, run_id: str, at: float = 0, owner: str = "w1", lease_s: float = 30
) -> ClaimedRun:
    """Claim `run_id` alone (every other run is excluded), asserting it was claimable."""
    others = [
        r.run_id
        for r in await store.list_runs(workflow=None, status=None, limit=1000)
        if r.run_id != run_id
    ]
    claimed = await store.claim(
        owner=owner, keys=KEYS, limit=10, now=t(at), lease_s=lease_s, exclude=others
    )
    assert [c.run_id for c in claimed] == [run_id], f"{run_id} was not claimable at t+{at}"
    return claimed[0]


async def started(store: Store, run_id: str, at: float = 0, **kw: Any) -> ClaimedRun:
    """Create a run and claim it."""
    await create(store, run_id, at, **kw)
    return await claim_one(store, run_id, at)


async def suspend(
    store: Store,
    c: ClaimedRun,
    waiting_on: list[str],
    *,
    at: float = 0,
    ready_at: datetime | None = None,
    seen: int | None = None,
) -> set[str]:
    result = await store.commit(
        Batch(
            now=t(at),
            suspends=[
                Suspend(
                    run_id=c.run_id,
                    fence=c.fence,
                    ready_at=ready_at,
                    waiting_on=waiting_on,
                    pending=b"state",
                    seen_wakeups=c.wakeups if seen is None else seen,
                )
            ],
        )
    )
    assert result.rejected == set()
    return result.woken


async def finish(
    store: Store,
    c: ClaimedRun,
    *,
    at: float = 0,
    status: str = "completed",
    output: bytes | None = b"out",
    error: str | None = None,
    event: Event | None = None,
) -> None:
    result = await store.commit(
        Batch(
            now=t(at),
            finishes=[Finish(c.run_id, c.fence, status, output, error, event)],
        )
    )
    assert result.rejected == set()


async def ready_at(store: Store, run_id: str) -> datetime | None:
    rec = await store.get_run(run_id)
    assert rec is not None
    return rec.ready_at


async def status(store: Store, run_id: str) -> str:
    rec = await store.get_run(run_id)
    assert rec is not None
    return rec.status


def ids(records: list[RunRecord]) -> list[str]:
    return [r.run_id for r in records]


def take_event(seq: int) -> Callable[[bytes | None], Event]:
    def make(payload: bytes | None) -> Event:
        return Event(seq, seq - 1, EventKind.SIGNAL_RECEIVED.value, "go", payload, T0)

    return make


async def upsert(
    store: Store, name: str, at: float, *, next_at: float, expression: str = "0 9 * * *"
) -> bool:
    when = {"next_fire_at": t(next_at), "now": t(at)}
    return await store.upsert_schedule(
        name=name, workflow="wf", expression=expression, timezone="UTC", **when
    )


async def schedule(store: Store, name: str) -> ScheduleRow:
    row = await store.get_schedule(name)
    assert row is not None
    return row


async def claim_tick(
    store: Store, name: str, due: float, nxt: float, *, at: float, expression: str = "0 9 * * *"
) -> bool:
    """Claim the tick due at t(due) (fired at that time), moving on to t(nxt)."""
    times = {"due_at": t(due), "fire_at": t(due), "next_fire_at": t(nxt), "now": t(at)}
    return await store.claim_schedule_tick(
        name=name, expression=expression, timezone="UTC", **times
    )


def _tagged(run_id: str, tags: dict[str, str]) -> NewRun:
    base = new_run(run_id)
    return NewRun(
        run_id=base.run_id,
        workflow=base.workflow,
        version=base.version,
        input=base.input,
        created_at=base.created_at,
        tags=tags,
    )
