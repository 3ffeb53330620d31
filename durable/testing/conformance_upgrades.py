"""Store conformance for continue-as-new, forks and cancel cleanup (migration 0007);
part of `StoreConformance`."""

# ruff: noqa: PT018 -- `x is not None and x.field == ...` narrows types for mypy in one line
from __future__ import annotations

import pytest
from msgspec.structs import replace

from durable.core.events import RUN_POS, Event, EventKind
from durable.core.vocabulary import RunStatus, child_key
from durable.errors import FenceLost
from durable.store.base import ChildOutcome, Store
from durable.testing.conformance_helpers import (
    KEYS,
    claim_one,
    create,
    ev,
    new_run,
    started,
    suspend,
    t,
)


def cancelled_event(seq: int, at: float) -> Event:
    return Event(seq, RUN_POS, EventKind.RUN_CANCELLED.value, "", None, t(at))


class UpgradeConformance:
    """The Store methods added for safe upgrades and run surgery."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("subclasses provide a `store` fixture yielding a fresh store")

    # -- continue_run ----------------------------------------------------------------------

    async def test_continue_run_ends_the_run_and_inserts_its_successor(self, store: Store) -> None:
        parent = await started(store, "p")
        await store.start_child("p", parent.fence, ev(1), new_run("c"), t(0))
        await suspend(store, parent, [child_key("c")])
        child = await claim_one(store, "c", at=1)
        created = await store.continue_run(
            "c", child.fence, [ev(1)], new_run("c2", data=b"next"), t(2)
        )
        assert (created.run_id, created.created, created.claimed) == ("c2", True, None)
        old = await store.get_run("c")
        assert old is not None and old.status == RunStatus.COMPLETED
        assert (old.output, old.error, old.continued_as) == (None, None, "c2")
        new = await store.get_run("c2")
        assert new is not None and new.status == RunStatus.PENDING
        assert (new.parent_run_id, new.continued_from, new.input) == ("p", "c", b"next")
        assert [e.seq for e in await store.load_events("c")] == [1]
        # The parent waiting on the old run is woken, and follows the chain.
        p = await store.get_run("p")
        assert p is not None and p.ready_at == t(2)
        assert await store.child_outcome("c") == ChildOutcome("pending", None, None, "c2")
        assert await store.child_outcome("c2") == ChildOutcome("pending", None, None)

    async def test_continue_run_needs_the_fence_and_writes_nothing_without(
        self, store: Store
    ) -> None:
        c = await started(store, "r")
        with pytest.raises(FenceLost):
            await store.continue_run("r", c.fence + 1, [ev(1)], new_run("r2"), t(1))
        assert await store.get_run("r2") is None
        assert await store.load_events("r") == []
        rec = await store.get_run("r")
        assert rec is not None and rec.status == RunStatus.RUNNING

    async def test_continue_run_can_lease_the_successor_to_its_owner(self, store: Store) -> None:
        c = await started(store, "r")
        leased = replace(new_run("r2"), owner="w9")
        created = await store.continue_run("r", c.fence, [], leased, t(1))
        assert created.claimed is not None
        assert (created.claimed.run_id, created.claimed.fence, created.claimed.fresh) == (
            "r2",
            1,
            True,
        )
        rec = await store.get_run("r2")
        assert rec is not None and rec.status == RunStatus.RUNNING

    # -- fork_run --------------------------------------------------------------------------

    async def test_fork_run_inserts_a_started_run_with_history(self, store: Store) -> None:
        await store.fork_run(new_run("f"), [ev(1), ev(2)], "orig", t(3))
        rec = await store.get_run("f")
        assert rec is not None and rec.status == RunStatus.SUSPENDED
        assert rec.forked_from == "orig"
        assert [e.seq for e in await store.load_events("f")] == [1, 2]
        claimed = await claim_one(store, "f", at=3)
        assert not claimed.fresh  # workers must load the copied history
        await store.fork_run(new_run("g"), [], "orig", t(3))
        rec = await store.get_run("g")
        assert rec is not None and rec.status == RunStatus.PENDING

    # -- cancel cleanup ---------------------------------------------------------------------

    async def test_cancel_with_cleanup_makes_started_runs_claimable_for_cleanup(
        self, store: Store
    ) -> None:
        c = await started(store, "r")
        await suspend(store, c, ["s:go"])
        await create(store, "never")  # pending: never started, owes no cleanup
        assert await store.cancel("r", t(1), cleanup_s=10) == ["r"]
        assert await store.cancel("never", t(1), cleanup_s=10) == ["never"]
        claimed = await store.claim_cleanups(owner="w2", keys=KEYS, limit=10, now=t(2))
        assert [(x.run_id, x.cleanup, x.deadline) for x in claimed] == [("r", True, t(11))]
        assert claimed[0].fence == c.fence + 1
        rec = await store.get_run("r")
        assert rec is not None and rec.status == RunStatus.CANCELLED
        # Held for the whole grace: nobody else may start the same cleanup.
        assert await store.claim_cleanups(owner="w3", keys=KEYS, limit=10, now=t(5)) == []
        # The group commit does not write a cancelled run; append_cleanup does, fenced.
        assert not await store.append_cleanup("r", c.fence, [ev(3)], t(3), done=False)
        assert await store.append_cleanup("r", claimed[0].fence, [ev(3)], t(3), done=False)
        assert await store.append_cleanup(
            "r", claimed[0].fence, [cancelled_event(4, 3)], t(3), done=True
        )
        assert [e.seq for e in await store.load_events("r")] == [1, 3, 4]
        # Done: owed no more, even before the grace ends.
        assert not await store.append_cleanup("r", claimed[0].fence, [ev(5)], t(4), done=True)
        assert await store.claim_cleanups(owner="w3", keys=KEYS, limit=10, now=t(4)) == []

    async def test_cleanup_is_owed_only_within_the_grace_and_when_asked(self, store: Store) -> None:
        for run_id in ("a", "b"):
            c = await started(store, run_id)
            await suspend(store, c, ["s:go"])
        await store.cancel("a", t(1), cleanup_s=5)
        await store.cancel("b", t(1))  # no cleanup_s: the old behaviour
        assert await store.claim_cleanups(owner="w", keys=KEYS, limit=10, now=t(7)) == []
        assert (
            await store.claim_cleanups(owner="w", keys=[("other", "1")], limit=10, now=t(2)) == []
        )
        claimed = await store.claim_cleanups(owner="w", keys=KEYS, limit=10, now=t(2))
        assert [x.run_id for x in claimed] == ["a"]
