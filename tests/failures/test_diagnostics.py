"""Honest messages: timeouts that say why, live workers, leases, takeovers, bad URLs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from durable import Context, Runtime, workflow

from .conftest import MakeRuntime


@workflow
async def approve(ctx: Context, _: Any) -> Any:
    return await ctx.wait_for_signal("go")


@workflow
async def other(ctx: Context, _: Any) -> Any:
    return 1


async def test_result_timeout_says_which_run_and_that_nobody_serves_it(
    make_rt: MakeRuntime,
) -> None:
    async with make_rt(approve, worker=False) as client:
        h = await client.trigger(approve)
        with pytest.raises(TimeoutError) as caught:
            await h.result(timeout=0.2)
    text = str(caught.value)
    assert h.run_id in text and "pending" in text and "0.2s" in text
    assert "no live worker serves workflow 'approve' version '1'" in text


async def test_result_timeout_names_the_wait_and_the_live_workers(make_rt: MakeRuntime) -> None:
    async with make_rt(other) as busy, make_rt(approve, worker=False) as client:
        h = await client.trigger(approve)
        with pytest.raises(TimeoutError) as caught:
            await h.result(timeout=0.2)
        assert "1 live worker(s) serve other workflows" in str(caught.value)
        async with make_rt(approve) as worker:
            for _ in range(200):
                if (await worker.get_run(h.run_id)).status == "suspended":
                    break
                await asyncio.sleep(0.02)
            with pytest.raises(TimeoutError) as caught:
                await h.result(timeout=0.2)
            text = str(caught.value)
            assert "suspended" in text and "waiting on signal 'go'" in text
            assert "1 live worker(s) serve workflow 'approve' version '1'" in text
            workers = await worker.store.list_workers(worker.clock.now())
            assert {w.id for w in workers} == {worker.executor.owner, busy.executor.owner}
            mine = next(w for w in workers if w.id == worker.executor.owner)
            assert ("approve", "1") in [tuple(k) for k in mine.workflows]
        # A worker that stops cleanly removes its row.
        left = await client.store.list_workers(client.clock.now())
        assert [w.id for w in left] == [busy.executor.owner]


async def test_takeover_of_an_expired_lease_is_logged(
    make_rt: MakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_rt(other, worker=False) as client:
        h = await client.trigger(other)
        claimed = await client.store.claim(
            owner="ghost:1:dead",
            keys=[("other", "1")],
            limit=1,
            now=client.clock.now(),
            lease_s=0.05,
        )
        assert [c.run_id for c in claimed] == [h.run_id]
        lease = await client.store.get_lease(h.run_id)
        assert lease is not None and lease.owner == "ghost:1:dead"
    await asyncio.sleep(0.1)
    caplog.set_level(logging.WARNING, logger="durable")
    async with make_rt(other) as rt:
        assert await rt.handle(h.run_id).result(timeout=10) == 1
    taken = [r.getMessage() for r in caplog.records if "taking it over" in r.getMessage()]
    assert taken and h.run_id in taken[0] and "ghost:1:dead" in taken[0]


@pytest.mark.parametrize("dsn", ["mysql://user@host/db", "sqlite:///tmp/x.db"])
async def test_a_foreign_database_url_is_a_value_error(dsn: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        async with Runtime(dsn, worker=False):
            pass


async def test_an_unreachable_server_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError, match="cannot connect to PostgreSQL"):
        async with Runtime("postgresql://postgres@127.0.0.1:1/x", worker=False):
            pass
