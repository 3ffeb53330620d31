"""Conformance tests of the issue 14 store operations: retry in place, leases, worker
heartbeat rows, takeovers and the schema check."""

# ruff: noqa: PT018 -- `x is not None and x.field == ...` narrows types for mypy in one line
from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from durable.core.events import RUN_POS, Event, EventKind
from durable.errors import RunNotFailed, RunNotFound
from durable.store.base import Batch, EventRow, Store, WorkerInfo
from durable.testing.conformance_helpers import (
    T0,
    claim_one,
    create,
    ev,
    finish,
    started,
    status,
    t,
    take_event,
)


def _worker(wid: str, at: float, ttl: float = 30) -> WorkerInfo:
    return WorkerInfo(wid, "host", 42, T0, t(at), t(at + ttl), [("wf", "1")])


class DiagnosticsConformance:
    """Mixed into `StoreConformance`; see its docstring for how to run it."""

    async def test_reopen_run_drops_events_and_keeps_the_inbox(self, store: Store) -> None:
        c = await started(store, "r")
        await store.commit(
            Batch(now=T0, events=[EventRow("r", c.fence, ev(1)), EventRow("r", c.fence, ev(2))])
        )
        await store.signal("r", "go", b"sig", t(1))
        failed = Event(3, RUN_POS, EventKind.RUN_FAILED.value, "", b"x", t(2))
        await finish(store, c, at=2, status="failed", output=None, error="boom", event=failed)
        with pytest.raises(RunNotFailed):  # stale view of the history: nothing changes
            await store.reopen_run("r", drop_seqs=[3], last_seq=2, now=t(3))
        assert await status(store, "r") == "failed"
        new = await store.reopen_run("r", drop_seqs=[2, 3], last_seq=3, now=t(3))
        assert new == "suspended"
        rec = await store.get_run("r")
        assert rec is not None and rec.error is None and rec.finished_at is None
        assert rec.ready_at == t(3)
        assert [e.seq for e in await store.load_events("r")] == [1]
        again = await claim_one(store, "r", at=3)
        assert again.fence == c.fence + 2  # bumped by the reopen and by the claim
        # The signal sent before the failure is still waiting in the inbox.
        assert await store.take_message("r", again.fence, "signal", "go", take_event(2), t(4)) == (
            True,
            b"sig",
        )

    async def test_reopen_run_refuses_other_runs(self, store: Store) -> None:
        with pytest.raises(RunNotFound):
            await store.reopen_run("nope", drop_seqs=[], last_seq=0, now=T0)
        c = await started(store, "done")
        await finish(store, c)
        with pytest.raises(RunNotFailed, match="completed"):
            await store.reopen_run("done", drop_seqs=[], last_seq=0, now=T0)
        await create(store, "p")
        await store.cancel("p", T0)
        with pytest.raises(RunNotFailed, match="cancelled"):
            await store.reopen_run("p", drop_seqs=[], last_seq=1, now=T0)

    async def test_reopen_run_without_history_is_pending(self, store: Store) -> None:
        c = await started(store, "r")
        await finish(store, c, status="failed", output=None, error="NonDeterminismError: x")
        assert await store.reopen_run("r", drop_seqs=[], last_seq=0, now=t(1)) == "pending"
        assert (await claim_one(store, "r", at=1)).run_id == "r"

    async def test_lease_and_takeover(self, store: Store) -> None:
        assert await store.get_lease("nope") is None
        await create(store, "r")
        lease = await store.get_lease("r")
        assert lease is not None and lease.owner is None and lease.until is None
        first = await claim_one(store, "r", owner="w1", lease_s=10)
        assert first.taken_from is None
        lease = await store.get_lease("r")
        assert lease is not None and lease.owner == "w1" and lease.until == t(10)
        second = await claim_one(store, "r", at=11, owner="w2")
        assert second.taken_from == "w1"

    async def test_worker_rows(self, store: Store) -> None:
        await store.record_worker(_worker("a", 0), T0)
        await store.record_worker(_worker("b", 0, ttl=5), T0)
        assert [w.id for w in await store.list_workers(t(1))] == ["a", "b"]
        assert [w.id for w in await store.list_workers(t(6))] == ["a"]  # b expired
        await store.record_worker(_worker("a", 20), t(20))
        (a,) = await store.list_workers(t(40))
        assert a.last_seen == t(20) and a.started_at == T0 and a.workflows == [("wf", "1")]
        assert a.host == "host" and a.pid == 42
        await store.remove_worker("a")
        await store.remove_worker("a")
        assert await store.list_workers(t(6)) == []
        # Long-expired rows are deleted by anyone's heartbeat.
        await store.record_worker(_worker("c", 0, ttl=1), T0)
        await store.record_worker(_worker("d", 7200), t(7200))
        # Listed at T0, "c" would still be live: it is gone, deleted by d's heartbeat.
        assert [w.id for w in await store.list_workers(T0)] == ["d"]

    async def test_worker_rows_keep_the_clock_skew(self, store: Store) -> None:
        await store.record_worker(_worker("a", 0), T0)
        (a,) = await store.list_workers(t(1))
        assert a.clock_skew_s is None
        await store.record_worker(msgspec.structs.replace(_worker("a", 1), clock_skew_s=-2.5), t(1))
        (a,) = await store.list_workers(t(2))
        assert a.clock_skew_s == -2.5

    async def test_database_time_is_aware_or_none(self, store: Store) -> None:
        # A store shared by processes reports its own clock (read fresh each time);
        # a single-process store reports None and the runtime's clock is the authority.
        first = await store.database_time()
        if first is None:
            assert await store.database_time() is None
            return
        assert first.tzinfo is not None and first.utcoffset() == timedelta(0)
        second = await store.database_time()
        assert second is not None and second >= first

    async def test_check_schema_passes_when_migrated(self, store: Store) -> None:
        await store.check_schema()
