"""Choosing a store: `Runtime("memory://")`, `Runtime(store=...)`, and the config object."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from durable import Context, Runtime, workflow
from durable.config import RuntimeConfig
from durable.store import Store
from durable.store.memory import MemoryStore


@workflow
async def greet(ctx: Context, name: str) -> str:
    word = await ctx.step("word", lambda: "hello")
    got = await ctx.wait_for_signal("go", timeout="10s")
    return f"{word} {name} {got}"


async def test_memory_url_runs_everything_in_process() -> None:
    async with Runtime("memory://", workflows=[greet], poll_interval="100ms") as rt:
        assert isinstance(rt.store, MemoryStore)
        h = await rt.trigger(greet, "ada")
        await rt.signal(h.run_id, "go", "!")
        assert await h.result(timeout=10) == "hello ada !"
        assert [r.run_id for r in await rt.list_runs()] == [h.run_id]
    # Nothing persists: a new memory runtime starts empty.
    async with Runtime("memory://", workflows=[greet]) as rt:
        assert await rt.list_runs() == []


async def test_a_given_store_is_shared_and_left_open() -> None:
    class Counting(MemoryStore):
        closed = 0

        async def close(self) -> None:
            Counting.closed += 1

    store = Counting()
    store_typed: Store = store  # any object implementing the protocol
    async with Runtime(store=store_typed, workflows=[greet], worker=False) as client:
        h = await client.trigger(greet, "bob")
        async with Runtime(store=store_typed, workflows=[greet]) as worker:
            await worker.signal(h.run_id, "go", "?")
            assert await client.handle(h.run_id).result(timeout=10) == "hello bob ?"
    assert Counting.closed == 0  # the caller owns the store it passed in
    async with Runtime(store=store, worker=False) as again:
        assert (await again.get_run(h.run_id)).status == "completed"


def test_dsn_and_store_together_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not both"):
        Runtime("memory://", store=MemoryStore())
    with pytest.raises(ValueError, match="not both"):
        Runtime.from_config(RuntimeConfig(), "postgresql://x/y", store=MemoryStore())


def test_runtime_config_is_built_from_the_keyword_arguments() -> None:
    rt = Runtime("memory://", concurrency=7, lease="2m", poll_interval="250ms", listen=False)
    assert rt.config == RuntimeConfig(
        concurrency=7, lease_s=120.0, poll_interval=0.25, listen=False
    )
    assert (rt.concurrency, rt.lease_s, rt.poll_interval, rt.listen) == (7, 120.0, 0.25, False)
    derived = Runtime.from_config(msgspec.structs.replace(rt.config, worker=False), "memory://")
    assert derived.config.lease_s == 120.0 and not derived.worker
    for bad in ({"concurrency": 0}, {"lease": 0}):
        with pytest.raises(ValueError, match="invalid"):
            Runtime("memory://", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="concurrency"):
        RuntimeConfig(concurrency=0)
    with pytest.raises(AttributeError):  # frozen
        rt.config.concurrency = 3  # type: ignore[misc]


async def test_runtimes_of_one_test_share_their_store(make_rt: Any) -> None:
    # make_rt (both stores) keeps data across runtimes of one test, like one schema.
    async with make_rt(greet, worker=False) as rt:
        h = await rt.trigger(greet, "eve")
    async with make_rt(greet) as rt:
        await rt.signal(h.run_id, "go", ".")
        assert await rt.handle(h.run_id).result(timeout=10) == "hello eve ."
