"""Conformance tests of the outside-the-run store operations: tags, keyset pages,
run times, custom events and hooks created from outside a run."""

# ruff: noqa: PT018 -- `x is not None and x.field == ...` narrows types for mypy in one line
from __future__ import annotations

import pytest

from durable.core.events import EventKind
from durable.errors import RunClosed, RunNotFound
from durable.store.base import Store
from durable.testing.conformance_helpers import (
    T0,
    _tagged,
    claim_one,
    create,
    ev,
    finish,
    ready_at,
    started,
    suspend,
    t,
    take_event,
)


class OutsideOpsConformance:
    """Mixed into `StoreConformance`; see its docstring for how to run it."""

    async def test_tags_on_create_update_and_filter(self, store: Store) -> None:
        await store.create_run(_tagged("a", {"team": "x", "env": "p"}), T0)
        await store.create_run(_tagged("b", {"team": "y"}), t(1))
        await create(store, "c", 2)
        rec = await store.get_run("a")
        assert rec is not None and rec.tags == {"team": "x", "env": "p"}
        assert (await store.get_run("c")).tags == {}  # type: ignore[union-attr]
        found = await store.list_runs(workflow=None, status=None, limit=10, tags={"team": "x"})
        assert [r.run_id for r in found] == ["a"]
        both = {"team": "x", "env": "p"}
        assert [
            r.run_id for r in await store.list_runs(workflow=None, status=None, limit=9, tags=both)
        ] == ["a"]
        none = {"team": "x", "env": "q"}
        assert await store.list_runs(workflow=None, status=None, limit=9, tags=none) == []
        updated = await store.update_tags("a", {"env": None, "new": "1"}, t(5))
        assert updated.tags == {"team": "x", "new": "1"}
        assert updated.updated_at == t(5)
        with pytest.raises(RunNotFound):
            await store.update_tags("nope", {"k": "v"}, t(5))

    async def test_keyset_pages_stay_correct_while_runs_arrive(self, store: Store) -> None:
        for i in range(5):
            await create(store, f"r{i}", i)
        await create(store, "r5", 4)  # same created_at as r4: the id breaks the tie
        first = await store.list_runs(workflow=None, status=None, limit=3)
        assert [r.run_id for r in first] == ["r5", "r4", "r3"]
        await create(store, "late", 10)  # arrives between pages: not in page 2
        last = first[-1]
        second = await store.list_runs(
            workflow=None, status=None, limit=3, before=(last.created_at, last.run_id)
        )
        assert [r.run_id for r in second] == ["r2", "r1", "r0"]

    async def test_started_and_finished_at(self, store: Store) -> None:
        c = await started(store, "r", at=1)
        rec = await store.get_run("r")
        assert rec is not None and rec.started_at == t(1) and rec.finished_at is None
        await finish(store, c, at=3)
        rec = await store.get_run("r")
        assert rec is not None and rec.finished_at == t(3)

    async def test_outside_events(self, store: Store) -> None:
        await create(store, "r")
        with pytest.raises(RunNotFound):
            await store.emit_event("nope", "t", None, t(1))
        await store.emit_event("r", "first", b"1", t(1))
        await store.emit_event("r", "second", None, t(2))
        got = await store.load_custom_events("r")
        assert [(e.type, e.payload, e.created_at) for e in got] == [
            ("first", b"1", t(1)),
            ("second", None, t(2)),
        ]
        assert got[0].id < got[1].id
        assert await store.load_events("r") == []  # never in the history
        await store.cancel("r", t(3))
        with pytest.raises(RunClosed):
            await store.emit_event("r", "late", None, t(4))
        assert len(await store.load_custom_events("r")) == 2

    async def test_outside_hook_delivers_a_signal(self, store: Store) -> None:
        c = await started(store, "r")
        with pytest.raises(RunNotFound):
            await store.create_outside_hook("nope", "t0", "go", None, t(1))
        await store.create_outside_hook("r", "tok", "go", b"meta", t(1))
        hook = await store.get_hook("tok")
        assert hook is not None
        assert (hook.run_id, hook.name, hook.metadata, hook.created_at, hook.used_at) == (
            "r",
            "go",
            b"meta",
            t(1),
            None,
        )
        assert await store.get_hook("other") is None
        await suspend(store, c, ["s:go"], at=2)
        assert await store.execute_hook("tok", b"yes", t(3)) == "r"
        assert await ready_at(store, "r") == t(3)
        used = await store.get_hook("tok")
        assert used is not None and used.used_at == t(3)
        c2 = await claim_one(store, "r", 4)
        got = await store.take_message("r", c2.fence, "signal", "go", take_event(1), t(5))
        assert got == (True, b"yes")
        await finish(store, c2, at=6)
        with pytest.raises(RunClosed):
            await store.create_outside_hook("r", "tok3", "go", None, t(7))
        assert await store.get_hook("tok3") is None

    async def test_ctx_hook_metadata(self, store: Store) -> None:
        c = await started(store, "r")
        event = ev(1, EventKind.HOOK_CREATED)
        await store.create_hook("r", c.fence, event, "tok", "approve", t(1), b"m")
        hook = await store.get_hook("tok")
        assert hook is not None and hook.metadata == b"m" and hook.name == "approve"
