"""Store conformance for flow control: `claim_queue`, `create_debounced`, `queue_stats`.

Subclass `QueueConformance` next to `StoreConformance`, with the same `store` fixture
(see durable.testing.conformance). durable runs it on MemoryStore and PostgresStore
(tests/store/test_queue_conformance.py).
"""

# ruff: noqa: PT018 -- `x is not None and x.field == ...` narrows types for mypy in one line
from __future__ import annotations

from typing import Any

from durable.store.base import Batch, ClaimedRun, Finish, NewRun, QueueSpec, Store
from durable.testing.conformance_helpers import KEYS, T0, t

Q = "q"


def queued(
    run_id: str,
    *,
    key: str | None = None,
    priority: int = 0,
    ready: float | None = None,
    debounce: str | None = None,
    data: bytes = b"in",
) -> NewRun:
    return NewRun(
        run_id,
        "wf",
        "1",
        data,
        T0,
        ready_at=None if ready is None else t(ready),
        queue=Q,
        queue_key=key,
        priority=priority,
        debounce_key=debounce,
    )


async def make(store: Store, *runs: NewRun, at: float = 0) -> None:
    created = await store.create_runs(list(runs), t(at))
    assert all(c.created for c in created)


async def take(
    store: Store,
    at: float = 0,
    limit: int = 10,
    owner: str = "w1",
    lease_s: float = 30,
    **spec: Any,
) -> list[ClaimedRun]:
    return await store.claim_queue(
        owner=owner,
        queue=QueueSpec(Q, **spec),
        keys=KEYS,
        limit=limit,
        now=t(at),
        lease_s=lease_s,
    )


def ids(claimed: list[ClaimedRun]) -> list[str]:
    return [c.run_id for c in claimed]


async def finish(store: Store, c: ClaimedRun, at: float) -> None:
    result = await store.commit(
        Batch(now=t(at), finishes=[Finish(c.run_id, c.fence, "completed", None, None, None)])
    )
    assert not result.rejected


class QueueConformance:
    """Flow-control behaviour every store must show (times explicit, as everywhere)."""

    async def test_queued_runs_start_only_through_claim_queue(self, store: Store) -> None:
        await make(store, queued("a"))
        assert await store.claim(owner="w", keys=KEYS, limit=10, now=t(1), lease_s=30) == []
        (c,) = await take(store, at=1)
        assert (c.run_id, c.fresh, c.started_at) == ("a", True, t(1))
        rec = await store.get_run("a")
        assert rec is not None and (rec.status, rec.queue) == ("running", Q)

    async def test_concurrency_counts_active_runs_and_a_finish_frees_a_slot(
        self, store: Store
    ) -> None:
        await make(store, queued("a"), queued("b"), queued("c"))
        first = await take(store, concurrency=2)
        assert ids(first) == ["a", "b"]
        assert await take(store, at=1, concurrency=2) == []
        await finish(store, first[0], at=5)
        # Claimed with a clock behind the finisher's: the start is stamped at the finish.
        (c,) = await take(store, at=4, concurrency=2)
        assert (c.run_id, c.started_at) == ("c", t(5))

    async def test_suspended_runs_stay_active(self, store: Store) -> None:
        from durable.store.base import Suspend

        await make(store, queued("a"), queued("b"))
        (a,) = await take(store, concurrency=1)
        await store.commit(
            Batch(now=t(1), suspends=[Suspend("a", a.fence, t(50), [], b"[]", a.wakeups)])
        )
        assert await take(store, at=2, concurrency=1) == []
        (again,) = await take(store, at=50, concurrency=1)  # its timer: no new slot needed
        assert (again.run_id, again.fresh, again.started_at) == ("a", False, t(0))

    async def test_per_key_limit_and_round_robin(self, store: Store) -> None:
        await make(
            store,
            queued("a1", key="a"),
            queued("a2", key="a"),
            queued("a3", key="a"),
            queued("b1", key="b"),
            queued("n1"),
        )
        first = await take(store, per_key_concurrency=1)
        assert sorted(ids(first)) == ["a1", "b1", "n1"]
        assert await take(store, at=1, per_key_concurrency=1) == []
        await finish(store, next(c for c in first if c.run_id == "a1"), at=2)
        assert ids(await take(store, at=3, per_key_concurrency=1)) == ["a2"]

    async def test_keys_take_turns_under_a_global_limit(self, store: Store) -> None:
        await make(store, queued("a1", key="a"), queued("a2", key="a"), queued("a3", key="a"))
        await make(store, queued("b1", key="b"), at=1)
        spec: dict[str, Any] = {"concurrency": 1, "per_key_concurrency": 1}
        (a1,) = await take(store, at=2, **spec)
        assert a1.run_id == "a1"
        await finish(store, a1, at=3)
        # a2 is older than b1, but key b has not been served yet.
        assert ids(await take(store, at=4, **spec)) == ["b1"]

    async def test_priority_then_fifo(self, store: Store) -> None:
        await make(store, queued("p5", priority=5), queued("p1", priority=1))
        await make(store, queued("p1b", priority=1), queued("p0", priority=0), at=1)
        got = []
        for i in range(4):
            (c,) = await take(store, at=2 + i, concurrency=1)
            got.append(c.run_id)
            await finish(store, c, at=2 + i)
        assert got == ["p0", "p1", "p1b", "p5"]

    async def test_rate_limit_is_a_sliding_window(self, store: Store) -> None:
        await make(store, *(queued(f"r{i}") for i in range(5)))
        assert len(await take(store, rate_limit=2, rate_period_s=10)) == 2
        assert await take(store, at=9.9, rate_limit=2, rate_period_s=10) == []
        assert len(await take(store, at=10, rate_limit=2, rate_period_s=10)) == 2
        assert await take(store, at=15, rate_limit=2, rate_period_s=10) == []

    async def test_delay_and_worker_limit(self, store: Store) -> None:
        await make(store, queued("later", ready=30), queued("now1"), queued("now2"))
        assert ids(await take(store, limit=1)) == ["now1"]
        assert ids(await take(store, at=29)) == ["now2"]
        assert ids(await take(store, at=30)) == ["later"]

    async def test_expired_lease_is_taken_over_keeping_its_slot(self, store: Store) -> None:
        await make(store, queued("a"), queued("b"))
        (a,) = await take(store, concurrency=1, lease_s=10)
        assert await take(store, at=5, owner="w2", concurrency=1) == []
        (again,) = await take(store, at=11, owner="w2", concurrency=1)
        assert (again.run_id, again.fresh, again.fence) == ("a", False, a.fence + 1)
        assert again.started_at == t(0)
        stats = (await store.queue_stats(t(11), Q))[0]
        assert (stats.active, stats.pending) == (1, 1)

    async def test_cancel_frees_the_slot(self, store: Store) -> None:
        await make(store, queued("a"), queued("b"))
        await take(store, concurrency=1)
        assert await store.cancel("a", t(1)) == ["a"]
        assert ids(await take(store, at=2, concurrency=1)) == ["b"]

    async def test_debounce_collapses_into_the_unstarted_run(self, store: Store) -> None:
        first = await store.create_debounced(queued("d1", debounce="k", ready=5), T0)
        assert (first.run_id, first.created) == ("d1", True)
        second = await store.create_debounced(
            queued("d2", debounce="k", ready=8, data=b"last"), t(3)
        )
        assert (second.run_id, second.created) == ("d1", False)
        assert await store.get_run("d2") is None
        rec = await store.get_run("d1")
        assert rec is not None and (rec.input, rec.ready_at) == (b"last", t(8))
        assert await take(store, at=7) == []
        (c,) = await take(store, at=8)
        assert (c.run_id, c.input) == ("d1", b"last")
        third = await store.create_debounced(queued("d3", debounce="k", ready=20), t(9))
        assert (third.run_id, third.created) == ("d3", True)

    async def test_queue_stats(self, store: Store) -> None:
        assert await store.queue_stats(T0) == []
        await store.upsert_queues([QueueSpec(Q, 3, 1, 10, 60.0)], T0)
        await make(store, queued("a1", key="a"), queued("a2", key="a"), queued("b1", key="b"))
        await take(store, at=1, concurrency=3, per_key_concurrency=1, rate_limit=10,
                   rate_period_s=60.0)  # fmt: skip
        (stats,) = await store.queue_stats(t(2))
        assert (stats.name, stats.concurrency, stats.per_key_concurrency) == (Q, 3, 1)
        assert (stats.rate_limit, stats.rate_period_s) == (10, 60.0)
        assert (stats.active, stats.pending, stats.window_starts) == (2, 1, 2)
        assert [(k.key, k.active, k.pending) for k in stats.keys] == [("a", 1, 1), ("b", 1, 0)]
        assert (await store.queue_stats(t(100), Q))[0].window_starts == 0
        assert await store.queue_stats(T0, "other") == []
