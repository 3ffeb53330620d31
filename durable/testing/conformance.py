"""The Store conformance suite: what any `durable.store.Store` must do, as pytest tests.

A third-party store proves itself by subclassing `StoreConformance` in a test module
and providing a `store` fixture that yields a fresh, opened and migrated store per test
(needs pytest and pytest-asyncio)::

    import pytest_asyncio
    from durable.testing.conformance import StoreConformance


    class TestMyStore(StoreConformance):
        @pytest_asyncio.fixture
        async def store(self):
            s = MyStore(...)
            await s.open()
            await s.migrate()
            yield s
            await s.close()

durable runs the same class against MemoryStore and PostgresStore
(tests/store/test_conformance.py). All times are explicit (`T0` + seconds), as the
protocol requires: a store must never read its own clock.
"""

# ruff: noqa: PT018 -- `x is not None and x.field == ...` narrows types for mypy in one line
from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from durable.core.events import RUN_POS, Event, EventKind
from durable.core.vocabulary import (
    NOTICE_WAKE,
    Notice,
    child_key,
    hook_key,
    parse_notice,
    signal_key,
)
from durable.errors import FenceLost, RunClosed, RunNotFound
from durable.store.base import (
    Batch,
    ChildOutcome,
    ClaimedRun,
    EventRow,
    Extend,
    Finish,
    NewRun,
    Store,
)
from durable.testing.conformance_diagnostics import DiagnosticsConformance
from durable.testing.conformance_helpers import (  # noqa: F401 - re-exported for suites
    KEYS,
    T0,
    WF,
    claim_one,
    claim_tick,
    create,
    ev,
    finish,
    ids,
    new_run,
    ready_at,
    schedule,
    started,
    status,
    suspend,
    t,
    take_event,
    upsert,
)
from durable.testing.conformance_outside import OutsideOpsConformance
from durable.testing.conformance_upgrades import UpgradeConformance


class StoreConformance(OutsideOpsConformance, DiagnosticsConformance, UpgradeConformance):
    """Subclass as `Test...` and provide a `store` fixture (see the module docstring)."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("subclasses provide a `store` fixture yielding a fresh store")

    # -- create / get / list ---------------------------------------------------------------------

    async def test_create_run_is_idempotent_by_run_id(self, store: Store) -> None:
        assert await store.create_run(new_run("r1", deadline_s=60), t(5)) == ("r1", True)
        assert await store.create_run(new_run("r1", data=b"other"), t(9)) == ("r1", False)
        rec = await store.get_run("r1")
        assert rec is not None
        assert (rec.workflow, rec.version, rec.status, rec.input) == ("wf", "1", "pending", b"in")
        assert (rec.output, rec.error, rec.parent_run_id, rec.pending) == (None, None, None, None)
        assert rec.created_at == rec.updated_at == rec.ready_at == t(5)
        assert await store.get_run("nope") is None
        assert await store.load_events("nope") == []

    async def test_create_run_is_idempotent_by_key(self, store: Store) -> None:
        assert await store.create_run(new_run("r1", key="k"), T0) == ("r1", True)
        assert await store.create_run(new_run("r2", key="k"), t(1)) == ("r1", False)
        assert await store.get_run("r2") is None
        # A matching run id wins over a matching key held by another run.
        assert await store.create_run(new_run("r3", key="k3"), T0) == ("r3", True)
        assert await store.create_run(new_run("r3", key="k"), T0) == ("r3", False)
        assert await store.create_run(new_run("r4", key="k4"), T0) == ("r4", True)

    async def test_idempotency_keys_are_scoped_per_workflow(self, store: Store) -> None:
        # Issue 16: the same key with another workflow used to return that other run.
        assert await store.create_run(new_run("a1", workflow="a", key="k"), T0) == ("a1", True)
        assert await store.create_run(new_run("b1", workflow="b", key="k"), T0) == ("b1", True)
        # Each workflow's key still stands for its own run, whatever the version.
        again = new_run("a2", workflow="a", version="2", key="k")
        assert await store.create_run(again, T0) == ("a1", False)
        assert await store.create_run(new_run("b2", workflow="b", key="k"), T0) == ("b1", False)
        # The same within one batch.
        batch = [
            new_run(i, workflow=w, key="j") for i, w in (("c1", "c"), ("d1", "d"), ("c2", "c"))
        ]
        made = await store.create_runs(batch, T0)
        assert [(c.run_id, c.created) for c in made] == [("c1", True), ("d1", True), ("c1", False)]
        assert await store.get_run("a2") is None and await store.get_run("c2") is None

    async def test_list_runs_filters_order_and_limit(self, store: Store) -> None:
        await create(store, "a", 1)
        await create(store, "b", 2, workflow="other")
        await create(store, "c", 3)
        await create(store, "d", 3)  # same created_at as c: id DESC breaks the tie
        await create(store, "e", 4, parent="a")
        everything = await store.list_runs(workflow=None, status=None, limit=10)
        assert ids(everything) == ["e", "d", "c", "b", "a"]
        assert ids(await store.list_runs(workflow=None, status=None, limit=2)) == ["e", "d"]
        assert ids(await store.list_runs(workflow="other", status=None, limit=10)) == ["b"]
        assert ids(
            await store.list_runs(workflow=None, status=None, limit=10, parent_run_id="a")
        ) == ["e"]
        c = await claim_one(store, "c", 5)
        await finish(store, c, at=6)
        assert ids(await store.list_runs(workflow=None, status="completed", limit=10)) == ["c"]
        assert ids(await store.list_runs(workflow="wf", status="pending", limit=10)) == [
            "e",
            "d",
            "a",
        ]
        assert ids(await store.list_runs(workflow="wf", status="pending", limit=0)) == []

    # -- claim -------------------------------------------------------------------------------------

    async def test_claim_only_registered_keys(self, store: Store) -> None:
        await create(store, "v1")
        await create(store, "v2", version="2")
        await create(store, "o1", workflow="other")
        assert await store.claim(owner="w", keys=[], limit=10, now=t(1), lease_s=30) == []
        assert await store.claim(owner="w", keys=KEYS, limit=0, now=t(1), lease_s=30) == []
        claimed = await store.claim(owner="w", keys=KEYS, limit=10, now=t(1), lease_s=30)
        assert [c.run_id for c in claimed] == ["v1"]
        claimed = await store.claim(
            owner="w", keys=[("wf", "2"), ("other", "1")], limit=10, now=t(1), lease_s=30
        )
        assert sorted(c.run_id for c in claimed) == ["o1", "v2"]

    async def test_claim_respects_ready_at(self, store: Store) -> None:
        await create(store, "r", 10)
        assert await store.claim(owner="w", keys=KEYS, limit=10, now=t(9), lease_s=30) == []
        claimed = await store.claim(owner="w", keys=KEYS, limit=10, now=t(10), lease_s=30)
        assert [c.run_id for c in claimed] == ["r"]
        assert await status(store, "r") == "running"

    async def test_claim_limit_order_and_exclude(self, store: Store) -> None:
        await create(store, "r3", 3)
        await create(store, "r1", 1)
        await create(store, "r2", 2)
        first = await store.claim(owner="w", keys=KEYS, limit=2, now=t(10), lease_s=30)
        assert sorted(c.run_id for c in first) == ["r1", "r2"]  # the earliest ready first
        await store.release("w", ["r1", "r2"], t(10))
        skipped = await store.claim(
            owner="w", keys=KEYS, limit=2, now=t(10), lease_s=30, exclude=["r1"]
        )
        assert sorted(c.run_id for c in skipped) == ["r2", "r3"]

    async def test_claim_fence_lease_and_reclaim(self, store: Store) -> None:
        await create(store, "r", 0, deadline_s=60)
        c1 = await claim_one(store, "r", 1, owner="w1", lease_s=30)
        assert (c1.fence, c1.wakeups, c1.started_at, c1.deadline) == (1, 0, t(1), t(60))
        assert (c1.workflow, c1.version, c1.input, c1.parent_run_id) == ("wf", "1", b"in", None)
        # A live lease is not reclaimed, not even at its exact expiry.
        for at in (2, 31):
            assert await store.claim(owner="w2", keys=KEYS, limit=10, now=t(at), lease_s=30) == []
        c2 = await claim_one(store, "r", 31.5, owner="w2")
        assert c2.fence == 2
        assert c2.started_at == t(1)  # first start is kept
        # The first holder lost its fence: its writes are refused, the new holder's are kept.
        result = await store.commit(Batch(now=t(32), events=[EventRow("r", 1, ev(1))]))
        assert (result.rejected, result.closed) == ({"r"}, set())
        result = await store.commit(Batch(now=t(32), events=[EventRow("r", 2, ev(1))]))
        assert result.rejected == set()
        assert await store.load_events("r") == [ev(1)]

    # -- commit ------------------------------------------------------------------------------------

    async def test_commit_appends_events_in_seq_order(self, store: Store) -> None:
        c = await started(store, "r")
        result = await store.commit(
            Batch(now=t(1), events=[EventRow("r", c.fence, ev(2)), EventRow("r", c.fence, ev(1))])
        )
        assert (result.rejected, result.woken, result.closed) == (set(), set(), set())
        await store.commit(Batch(now=t(2), events=[EventRow("r", c.fence, ev(3, at=2))]))
        assert await store.load_events("r") == [ev(1), ev(2), ev(3, at=2)]
        assert await status(store, "r") == "running"

    async def test_get_run_and_events_reads_the_run_with_its_history(self, store: Store) -> None:
        assert await store.get_run_and_events("nope") is None
        c = await started(store, "r")
        await create(store, "other")
        assert await store.get_run_and_events("r") == (await store.get_run("r"), [])
        bare = Event(3, 2, EventKind.RECORDED.value, "", None, t(2))  # NULL payload and name ""
        rows = [EventRow("r", c.fence, e) for e in (ev(2), ev(1), bare)]
        await store.commit(Batch(now=t(2), events=rows))
        found = await store.get_run_and_events("r")
        assert found == (await store.get_run("r"), [ev(1), ev(2), bare])
        assert found is not None and found[0].status == "running"
        assert await store.get_run_and_events("other") == (await store.get_run("other"), [])

    async def test_commit_rejects_stale_fence_without_failing_others(self, store: Store) -> None:
        a = await started(store, "a")
        b = await started(store, "b")
        result = await store.commit(
            Batch(
                now=t(1),
                events=[
                    EventRow("a", a.fence + 1, ev(1)),
                    EventRow("b", b.fence, ev(1)),
                    EventRow("ghost", 1, ev(1)),
                ],
                finishes=[Finish("b", b.fence, "completed", b"ok", None, ev(2))],
            )
        )
        assert (result.rejected, result.closed) == ({"a", "ghost"}, set())
        assert await store.load_events("a") == []
        assert await store.load_events("b") == [ev(1), ev(2)]
        assert await status(store, "a") == "running"
        assert await status(store, "b") == "completed"

    async def test_commit_reports_closed_for_cancelled_run(self, store: Store) -> None:
        c = await started(store, "r")
        await store.commit(Batch(now=t(1), events=[EventRow("r", c.fence, ev(1))]))
        assert await store.cancel("r", t(2)) == ["r"]
        result = await store.commit(
            Batch(
                now=t(3),
                events=[EventRow("r", c.fence, ev(2))],
                extends=[Extend("r", c.fence)],
            )
        )
        assert (result.rejected, result.closed) == ({"r"}, {"r"})
        events = await store.load_events("r")
        assert [e.kind for e in events] == ["recorded", "run_cancelled"]
        # A run that merely lost its lease is rejected but not closed.
        d = await started(store, "d")
        result = await store.commit(Batch(now=t(3), extends=[Extend("d", d.fence + 5)]))
        assert (result.rejected, result.closed) == ({"d"}, set())

    async def test_finish_sets_terminal_state(self, store: Store) -> None:
        ok = await started(store, "ok")
        bad = await started(store, "bad")
        result = await store.commit(
            Batch(
                now=t(5),
                finishes=[
                    Finish(
                        "ok", ok.fence, "completed", b"out", None, ev(1, EventKind.RUN_COMPLETED)
                    ),
                    Finish("bad", bad.fence, "failed", None, "boom", None),
                ],
            )
        )
        assert result.rejected == set()
        rec = await store.get_run("ok")
        assert rec is not None
        assert (rec.status, rec.output, rec.error, rec.ready_at, rec.updated_at) == (
            "completed",
            b"out",
            None,
            None,
            t(5),
        )
        assert await store.load_events("ok") == [ev(1, EventKind.RUN_COMPLETED)]
        rec = await store.get_run("bad")
        assert rec is not None
        assert (rec.status, rec.output, rec.error) == ("failed", None, "boom")
        assert await store.load_events("bad") == []
        assert await store.child_outcome("bad") == ChildOutcome("failed", None, "boom")
        # Finished runs are never claimed again, and further writes are refused as closed.
        assert await store.claim(owner="w", keys=KEYS, limit=10, now=t(100), lease_s=30) == []
        result = await store.commit(Batch(now=t(6), events=[EventRow("ok", ok.fence, ev(2))]))
        assert (result.rejected, result.closed) == ({"ok"}, {"ok"})

    async def test_finish_wakes_parent_waiting_on_child(self, store: Store) -> None:
        p = await started(store, "p")
        other = await started(store, "q")
        await store.start_child("p", p.fence, ev(1, EventKind.CHILD_STARTED), new_run("kid"), t(1))
        await store.start_child(
            "q", other.fence, ev(1, EventKind.CHILD_STARTED), new_run("kid2"), t(1)
        )
        assert await suspend(store, p, [child_key("kid")], at=2) == set()
        assert await suspend(store, other, [signal_key("x")], at=2) == set()
        assert await ready_at(store, "p") is None
        kids = await store.claim(owner="w", keys=KEYS, limit=10, now=t(3), lease_s=30)
        assert sorted(k.run_id for k in kids) == ["kid", "kid2"]
        for k in kids:
            await finish(store, k, at=4, output=k.run_id.encode())
        assert await ready_at(store, "p") == t(4)
        assert await ready_at(store, "q") is None  # it waits on something else
        assert await store.child_outcome("kid") == ChildOutcome("completed", b"kid", None)
        again = await claim_one(store, "p", 4)
        assert again.wakeups == p.wakeups + 1
        assert again.fence == p.fence + 1
        rec = await store.get_run("p")
        assert rec is not None and rec.pending == b"state"

    async def test_two_children_finishing_in_one_batch_wake_their_parent(
        self, store: Store
    ) -> None:
        p = await started(store, "p")
        for n, kid in enumerate(("kid_a", "kid_b"), start=1):
            event = ev(n, EventKind.CHILD_STARTED, kid)
            await store.start_child("p", p.fence, event, new_run(kid), t(1))
        # The parent awaits the first child only; both finish in the same group commit.
        assert await suspend(store, p, [child_key("kid_a")], at=2) == set()
        kids = {
            k.run_id: k
            for k in await store.claim(owner="w", keys=KEYS, limit=10, now=t(3), lease_s=30)
        }
        assert sorted(kids) == ["kid_a", "kid_b"]
        result = await store.commit(
            Batch(
                now=t(4),
                finishes=[
                    Finish(k.run_id, k.fence, "completed", b"ok", None, None)
                    for k in (kids["kid_a"], kids["kid_b"])
                ],
            )
        )
        assert result.rejected == set()
        assert await ready_at(store, "p") == t(4)
        again = await claim_one(store, "p", 4)
        assert again.wakeups >= p.wakeups + 1

    async def test_suspend_sets_state_and_timer(self, store: Store) -> None:
        c = await started(store, "r")
        assert await suspend(store, c, ["t:1"], at=1, ready_at=t(50)) == set()
        rec = await store.get_run("r")
        assert rec is not None
        state = (rec.status, rec.ready_at, rec.pending, rec.updated_at)
        assert state == ("suspended", t(50), b"state", t(1))
        assert await store.claim(owner="w", keys=KEYS, limit=10, now=t(49), lease_s=30) == []
        again = await claim_one(store, "r", 50)
        assert again.fence == 2

    async def test_suspend_woken_when_wakeups_changed_since_claim(self, store: Store) -> None:
        c = await started(store, "r")
        await store.signal("r", "go", b"1", t(1))  # arrives while the run is held
        assert await ready_at(store, "r") == t(0)  # running: ready_at untouched
        assert await suspend(store, c, [signal_key("other")], at=2) == {"r"}
        rec = await store.get_run("r")
        assert rec is not None
        assert (rec.status, rec.ready_at) == ("suspended", t(2))
        again = await claim_one(store, "r", 2)
        assert again.wakeups == 1
        # With nothing new since the claim, the same suspension stays asleep.
        assert await suspend(store, again, [signal_key("other")], at=3) == set()
        assert await ready_at(store, "r") is None

    async def test_extend_renews_lease(self, store: Store) -> None:
        c = await started(store, "r")
        result = await store.commit(Batch(now=t(20), extends=[Extend("r", c.fence)], lease_s=30))
        assert result.rejected == set()
        assert await store.claim(owner="w2", keys=KEYS, limit=10, now=t(45), lease_s=30) == []
        assert await store.next_ready_at(KEYS) == t(50)
        c2 = await claim_one(store, "r", 51, owner="w2")
        assert c2.fence == 2

    # -- release -----------------------------------------------------------------------------------

    async def test_release(self, store: Store) -> None:
        fresh = await started(store, "fresh")
        used = await started(store, "used")
        await store.commit(Batch(now=t(1), events=[EventRow("used", used.fence, ev(1))]))
        await store.release("intruder", ["fresh", "used"], t(2))  # not the owner: no change
        assert await status(store, "fresh") == "running"
        await store.release("w1", ["fresh", "used", "ghost"], t(3))
        for run_id, expected in (("fresh", "pending"), ("used", "suspended")):
            rec = await store.get_run(run_id)
            assert rec is not None
            assert (rec.status, rec.ready_at, rec.updated_at) == (expected, t(3), t(3))
        again = await claim_one(store, "fresh", 3)
        assert again.fence == fresh.fence + 1
        await store.release("w1", [], t(4))

    # -- inbox: signals, hooks ---------------------------------------------------------------------

    async def test_take_message_fifo_and_fence(self, store: Store) -> None:
        c = await started(store, "r")
        await store.signal("r", "go", b"first", t(1))
        await store.signal("r", "go", b"second", t(2))
        await store.signal("r", "stop", b"other", t(3))
        make1, make2, make3 = take_event(1), take_event(2), take_event(3)
        with pytest.raises(FenceLost):
            await store.take_message("r", c.fence + 1, "signal", "go", make1, t(4))
        assert await store.take_message("r", c.fence, "signal", "go", make1, t(4)) == (
            True,
            b"first",
        )
        assert await store.take_message("r", c.fence, "signal", "go", make2, t(4)) == (
            True,
            b"second",
        )
        assert await store.take_message("r", c.fence, "signal", "go", make3, t(4)) == (False, None)
        assert await store.take_message("r", c.fence, "hook", "stop", make3, t(4)) == (False, None)
        events = await store.load_events("r")
        assert [(e.seq, e.kind, e.payload) for e in events] == [
            (1, "signal_received", b"first"),
            (2, "signal_received", b"second"),
        ]
        await store.release("w1", ["r"], t(5))
        with pytest.raises(FenceLost):  # not running any more
            await store.take_message("r", c.fence, "signal", "stop", make3, t(6))
        with pytest.raises(FenceLost):
            await store.take_message("ghost", 1, "signal", "stop", make3, t(6))

    async def test_signal_errors(self, store: Store) -> None:
        with pytest.raises(RunNotFound):
            await store.signal("ghost", "go", b"", t(1))
        c = await started(store, "r")
        await finish(store, c, at=1)
        with pytest.raises(RunClosed):
            await store.signal("r", "go", b"", t(2))

    async def test_signal_wakes_only_a_run_waiting_on_it(self, store: Store) -> None:
        a = await started(store, "a")
        b = await started(store, "b")
        timed = await started(store, "timed")
        await suspend(store, a, [signal_key("go")], at=1)
        await suspend(store, b, [signal_key("other")], at=1)
        await suspend(store, timed, [signal_key("other")], at=1, ready_at=t(100))
        for run_id in ("a", "b", "timed"):
            await store.signal(run_id, "go", b"x", t(5))
        assert await ready_at(store, "a") == t(5)
        assert await ready_at(store, "b") is None
        assert await ready_at(store, "timed") == t(100)
        claimed = await store.claim(owner="w", keys=KEYS, limit=10, now=t(6), lease_s=30)
        assert [c.run_id for c in claimed] == ["a"]
        assert claimed[0].wakeups == 1
        # The signal was kept for the run that was not woken.
        await store.signal("b", "other", b"y", t(7))
        b2 = await claim_one(store, "b", 7)
        assert await store.take_message("b", b2.fence, "signal", "go", take_event(1), t(8)) == (
            True,
            b"x",
        )

    async def test_hooks(self, store: Store) -> None:
        c = await started(store, "r")
        with pytest.raises(FenceLost):
            await store.create_hook("r", c.fence + 1, ev(1), "tok", "approve", t(1))
        await store.create_hook("r", c.fence, ev(1, EventKind.HOOK_CREATED), "tok", "approve", t(1))
        assert await store.load_events("r") == [ev(1, EventKind.HOOK_CREATED)]
        await suspend(store, c, [hook_key("tok")], at=2)
        with pytest.raises(RunNotFound):
            await store.execute_hook("nope", b"", t(3))
        assert await store.execute_hook("tok", b"yes", t(3)) == "r"
        assert await ready_at(store, "r") == t(3)
        with pytest.raises(RunClosed):
            await store.execute_hook("tok", b"again", t(4))
        c2 = await claim_one(store, "r", 4)
        assert c2.wakeups == 1
        got = await store.take_message("r", c2.fence, "hook", "tok", take_event(2), t(5))
        assert got == (True, b"yes")
        # A hook of a finished run is closed.
        await store.create_hook("r", c2.fence, ev(3, EventKind.HOOK_CREATED), "tok2", "x", t(5))
        await finish(store, c2, at=6)
        with pytest.raises(RunClosed):
            await store.execute_hook("tok2", b"late", t(7))

    # -- children and cancellation -----------------------------------------------------------------

    async def test_start_child(self, store: Store) -> None:
        p = await started(store, "p")
        event = ev(1, EventKind.CHILD_STARTED, "kid")
        with pytest.raises(FenceLost):
            await store.start_child("p", p.fence + 1, event, new_run("kid"), t(1))
        assert await store.get_run("kid") is None
        assert await store.child_outcome("kid") is None
        kid = new_run("kid", data=b"ci")
        assert await store.start_child("p", p.fence, event, kid, t(2)) == "kid"
        rec = await store.get_run("kid")
        assert rec is not None
        state = (rec.parent_run_id, rec.status, rec.input, rec.ready_at, rec.created_at)
        assert state == ("p", "pending", b"ci", t(2), t(2))
        assert await store.load_events("p") == [event]
        assert await store.child_outcome("kid") == ChildOutcome("pending", None, None)
        kids = await store.list_runs(workflow=None, status=None, limit=10, parent_run_id="p")
        assert [k.run_id for k in kids] == ["kid"]

    async def test_cancel_is_recursive(self, store: Store) -> None:
        p = await started(store, "p")
        await store.commit(Batch(now=t(1), events=[EventRow("p", p.fence, ev(1))]))
        await store.start_child("p", p.fence, ev(2, EventKind.CHILD_STARTED), new_run("kid"), t(2))
        await store.start_child("p", p.fence, ev(3, EventKind.CHILD_STARTED), new_run("done"), t(2))
        kid = await claim_one(store, "kid", 3)
        done = await claim_one(store, "done", 3)
        await store.start_child(
            "kid", kid.fence, ev(1, EventKind.CHILD_STARTED), new_run("gk"), t(3)
        )
        await finish(store, done, at=4)
        cancelled = await store.cancel("p", t(5))
        assert sorted(cancelled) == ["gk", "kid", "p"]
        for run_id in ("p", "kid", "gk"):
            rec = await store.get_run(run_id)
            assert rec is not None
            assert (rec.status, rec.error, rec.ready_at) == ("cancelled", "cancelled", None)
        assert await status(store, "done") == "completed"
        marker = Event(4, RUN_POS, EventKind.RUN_CANCELLED.value, "", None, t(5))
        assert (await store.load_events("p"))[-1] == marker
        assert await store.load_events("gk") == [Event(1, RUN_POS, "run_cancelled", "", None, t(5))]
        assert await store.claim(owner="w", keys=KEYS, limit=10, now=t(100), lease_s=30) == []
        with pytest.raises(RunClosed):
            await store.cancel("p", t(6))
        with pytest.raises(RunClosed):
            await store.cancel("done", t(6))
        with pytest.raises(RunNotFound):
            await store.cancel("ghost", t(6))

    async def test_cancel_child_wakes_waiting_parent(self, store: Store) -> None:
        p = await started(store, "p")
        await store.start_child("p", p.fence, ev(1, EventKind.CHILD_STARTED), new_run("kid"), t(1))
        await suspend(store, p, [child_key("kid")], at=2)
        assert await store.cancel("kid", t(3)) == ["kid"]
        assert await ready_at(store, "p") == t(3)
        assert await status(store, "p") == "suspended"
        assert await store.child_outcome("kid") == ChildOutcome("cancelled", None, "cancelled")

    # -- next_ready_at -----------------------------------------------------------------------------

    async def test_next_ready_at(self, store: Store) -> None:
        assert await store.next_ready_at([]) is None
        assert await store.next_ready_at(KEYS) is None
        await create(store, "other", 1, workflow="other")
        assert await store.next_ready_at(KEYS) is None
        c = await started(store, "held", 10)  # lease until t(40)
        assert await store.next_ready_at(KEYS) == t(40)
        await create(store, "later", 20)
        assert await store.next_ready_at(KEYS) == t(20)
        s = await started(store, "sleeper", 15)
        await suspend(store, s, [], at=15)  # waits on nothing time-bound: ignored
        assert await store.next_ready_at(KEYS) == t(20)
        await store.release("w1", [c.run_id], t(12))
        assert await store.next_ready_at(KEYS) == t(12)
        assert await store.next_ready_at([("other", "1")]) == t(1)
        assert await store.next_ready_at([*KEYS, ("other", "1")]) == t(1)

    # -- local dispatch --------------------------------------------------------------------

    async def test_create_runs_with_owner_returns_the_claim(self, store: Store) -> None:
        leased = NewRun("mine", "wf", "1", b"in", T0, deadline_s=60, owner="w1", lease_s=10)
        first = await store.create_runs([leased, new_run("free")], t(1))
        assert [(c.run_id, c.created) for c in first] == [("mine", True), ("free", True)]
        claim = first[0].claimed
        assert claim == ClaimedRun("mine", "wf", "1", b"in", 1, 0, None, t(1), t(61), True)
        assert first[1].claimed is None
        assert await status(store, "mine") == "running"
        # Held until the lease ends: nobody else claims it before t(11).
        got = await store.claim(owner="w2", keys=KEYS, limit=10, now=t(5), lease_s=30)
        assert [c.run_id for c in got] == ["free"]
        result = await store.commit(Batch(now=t(2), events=[EventRow("mine", 1, ev(1))]))
        assert result.rejected == set()
        again = await store.create_runs([leased], t(3))
        assert [(c.run_id, c.created, c.claimed) for c in again] == [("mine", False, None)]

    async def test_create_runs_resolves_duplicates_within_one_call(self, store: Store) -> None:
        """Requests repeating an id or key in one call act as sequential calls: the first
        wins, created (and claimed) once; the others stand for it (issue 16, item 13)."""

        def leased(run_id: str, data: bytes, key: str | None = None) -> NewRun:
            return NewRun(run_id, "wf", "1", data, T0, key, owner="w1", lease_s=10)

        out = await store.create_runs(
            [
                leased("same", b"0"),
                leased("same", b"1"),
                leased("k1", b"2", key="k"),
                leased("k2", b"3", key="k"),
                leased("same", b"4", key="k9"),  # the id wins: k9 stays free
                leased("k9", b"5", key="k9"),
            ],
            t(1),
        )
        got = [(c.run_id, c.created, c.claimed is not None) for c in out]
        assert got == [
            ("same", True, True),
            ("same", False, False),
            ("k1", True, True),
            ("k1", False, False),
            ("same", False, False),
            ("k9", True, True),
        ]
        claimed = out[0].claimed
        assert claimed is not None and claimed.input == b"0"
        for run_id, data in (("same", b"0"), ("k1", b"2"), ("k9", b"5")):
            rec = await store.get_run(run_id)
            assert rec is not None and rec.input == data
        assert await store.get_run("k2") is None

    # -- notices ---------------------------------------------------------------------------

    async def test_listen_delivers_notices(self, store: Store) -> None:
        seen: list[str] = []

        async def expect(check: Callable[[], bool]) -> None:
            async with asyncio.timeout(5):  # notices may arrive asynchronously
                while not check():
                    await asyncio.sleep(0.01)

        def done_ids() -> set[str]:
            out: set[str] = set()
            for payload in seen:
                kind, run_ids = parse_notice(payload)
                if kind is Notice.DONE:
                    out.update(run_ids)
            return out

        listener = await store.listen(seen.append)
        try:
            assert listener.active
            await store.create_run(new_run("p"), T0)
            await expect(lambda: NOTICE_WAKE in seen)
            p = await claim_one(store, "p")
            await store.start_child("p", p.fence, ev(1), new_run("kid"), t(1))
            k = await claim_one(store, "kid", 2)
            seen.clear()
            await finish(store, k, at=3)
            await expect(lambda: "kid" in done_ids())
            seen.clear()
            assert await store.cancel("p", t(4)) == ["p"]
            await expect(lambda: "p" in done_ids())
            await expect(lambda: (Notice.CANCELLED, ["p"]) in [parse_notice(x) for x in seen])
        finally:
            await listener.close()
        seen.clear()
        await store.create_run(new_run("q"), T0)
        await asyncio.sleep(0.2)
        assert seen == []

    # -- schedules -------------------------------------------------------------------------

    async def test_schedule_upsert_and_deactivate(self, store: Store) -> None:
        assert await store.list_schedules() == []
        assert await upsert(store, "b", 0, next_at=100)
        assert await upsert(store, "a", 0, next_at=200)
        assert not await upsert(store, "b", 1, next_at=150)  # unchanged: nothing written
        b = await schedule(store, "b")
        assert (b.next_fire_at, b.updated_at, b.paused, b.active) == (t(100), t(0), False, True)
        assert (b.last_fired_at, b.pending_fire_at, b.claimed_at) == (None, None, None)
        assert [r.name for r in await store.list_schedules()] == ["a", "b"]
        assert await store.get_schedule("nope") is None
        assert await store.pause_schedule("b", t(2)) is True
        assert await store.pause_schedule("nope", t(2)) is False
        # A changed expression restarts from the new fire time and keeps the pause.
        assert await upsert(store, "b", 3, next_at=300, expression="0 10 * * *")
        b = await schedule(store, "b")
        assert (b.next_fire_at, b.paused, b.updated_at) == (t(300), True, t(3))
        assert await store.deactivate_schedules(["wf"], ["a"], t(4)) == ["b"]
        assert await store.deactivate_schedules(["other"], [], t(4)) == []
        assert not (await schedule(store, "b")).active
        assert await store.next_schedule_due(["a", "b"]) == t(200)
        # Declared again: active again, restarting from the given time.
        assert await upsert(store, "b", 5, next_at=400, expression="0 10 * * *")
        b = await schedule(store, "b")
        assert (b.active, b.next_fire_at) == (True, t(400))

    async def test_schedule_tick_claim_is_compare_and_set(self, store: Store) -> None:
        await upsert(store, "s", 0, next_at=10)
        assert await store.due_schedules(["s"], t(9)) == []
        (due,) = await store.due_schedules(["s", "ghost"], t(10))
        assert due.next_fire_at == t(10)
        assert not await claim_tick(store, "s", 10, 20, at=11, expression="0 8 * * *")
        assert await claim_tick(store, "s", 10, 20, at=11)
        assert not await claim_tick(store, "s", 10, 20, at=11)  # the race is lost
        row = await schedule(store, "s")
        claimed = (row.next_fire_at, row.last_fired_at, row.pending_fire_at, row.claimed_at)
        assert claimed == (t(20), t(10), t(10), t(11))
        # An unconfirmed claim blocks the next tick and becomes stale after a while.
        assert not await claim_tick(store, "s", 20, 30, at=21)
        assert await store.stale_schedule_claims(["s"], t(11)) == []
        (stale,) = await store.stale_schedule_claims(["s"], t(12))
        assert stale.pending_fire_at == t(10)
        assert await store.reclaim_schedule_tick("s", t(10), t(12), t(13)) is True
        assert await store.reclaim_schedule_tick("s", t(10), t(12), t(13)) is False
        await store.confirm_schedule_tick("s", t(99))  # another tick: no change
        row = await schedule(store, "s")
        assert (row.pending_fire_at, row.claimed_at) == (t(10), t(13))
        await store.confirm_schedule_tick("s", t(10))
        assert (await schedule(store, "s")).pending_fire_at is None
        assert await claim_tick(store, "s", 20, 30, at=21)
        await store.confirm_schedule_tick("s", t(20))
        # Paused schedules are neither due nor claimable.
        await store.pause_schedule("s", t(22))
        assert await store.due_schedules(["s"], t(100)) == []
        assert await store.next_schedule_due(["s"]) is None
        assert not await claim_tick(store, "s", 30, 40, at=31)

    async def test_schedule_resume_is_compare_and_set(self, store: Store) -> None:
        await upsert(store, "s", 0, next_at=10)
        utc = {"expression": "0 9 * * *", "timezone": "UTC"}
        paris = {"expression": "0 9 * * *", "timezone": "Europe/Paris"}
        assert not await store.resume_schedule("s", next_fire_at=t(50), now=t(1), **utc)
        assert not await store.resume_schedule("ghost", next_fire_at=t(50), now=t(1), **utc)
        await store.pause_schedule("s", t(2))
        assert not await store.resume_schedule("s", next_fire_at=t(50), now=t(3), **paris)
        assert await store.resume_schedule("s", next_fire_at=t(50), now=t(3), **utc)
        row = await schedule(store, "s")
        assert (row.paused, row.next_fire_at, row.updated_at) == (False, t(50), t(3))

    async def test_purge_partitions_then_purge_remove_exactly_the_expired_runs(
        self, store: Store
    ) -> None:
        """`purge_runs` calls purge_partitions, then purge until done: together they
        delete what purge alone would (a store without partitions returns 0 first)."""
        await store.maintain()  # periodic upkeep: idempotent, touches no run
        await store.maintain()
        for run_id in ("old1", "old2", "open", "late"):
            await create(store, run_id)
        for run_id, at in (("old1", 1), ("old2", 2), ("late", 200)):
            await finish(store, await claim_one(store, run_id), at=at)
        gone = await store.purge_partitions(t(100))
        gone += await store.purge(t(100), 100)
        assert gone == 2
        assert await store.get_run("old1") is None
        assert await store.get_run("old2") is None
        assert await store.load_events("old1") == []
        assert await store.get_run("open") is not None
        assert await store.get_run("late") is not None
