"""The group committer survives a batch that fails in a way nobody foresaw, on both stores.

With one batch in flight (the default) the committer commits on its own task, with no
task per batch. Errors of the store are handled where the batch is written (`_write`:
bisected to the run at fault, or handed to the batch's writers); an error escaping
that (a bug) must fail that batch's writers and leave the committer serving the next
batch. It used to end the batch's own task, leaving its writers waiting for ever.
"""

from __future__ import annotations

import asyncio
import gc
from datetime import datetime

import pytest

from durable import Runtime
from durable.clock import Clock
from durable.core.events import Event, EventKind
from durable.store import Store
from durable.testing.conformance_helpers import started, t
from durable.worker.committer import GC_YOUNG_THRESHOLD, GroupCommitter, Item, young_gc_threshold


class _Clock(Clock):
    def now(self) -> datetime:
        return t(1)


@pytest.fixture
def store(backend_store: Store) -> Store:
    return backend_store


async def test_an_unexpected_error_fails_its_batch_not_the_committer(store: Store) -> None:
    c = await started(store, "r1")
    committer = GroupCommitter(store, _Clock(), lease_s=30)
    committer.start()
    real = committer._write
    broken = [True]

    async def write(items: list[Item]) -> None:
        if broken:
            broken.clear()
            raise RuntimeError("bug while writing the batch")
        await real(items)

    committer._write = write  # type: ignore[method-assign]
    first = Event(1, 0, EventKind.STEP_COMPLETED.value, "a", b"M\xc0", None)
    try:
        with pytest.raises(RuntimeError, match="bug while writing the batch"):
            await asyncio.wait_for(committer.submit("r1", c.fence, events=[first]), 10)
        accepted, closed, _ = await asyncio.wait_for(
            committer.submit("r1", c.fence, events=[first]), 10
        )
        assert (accepted, closed) == (True, False)
        assert [(e.seq, e.name) for e in await store.load_events("r1")] == [(1, "a")]
    finally:
        await committer.close()


async def test_a_runtime_raises_only_pythons_default_gc_threshold() -> None:
    """The worker's one gc setting (docs/operations.md): Python's default first
    threshold is raised; thresholds the application chose are left alone."""
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        young_gc_threshold()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(1234, 5, 5)
        async with Runtime("memory://"):
            assert gc.get_threshold() == (1234, 5, 5)
    finally:
        gc.set_threshold(*saved)
