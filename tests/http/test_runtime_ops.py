"""Outside-the-run operations on a real Postgres: events, hooks, tags, lineage, RunInfo."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpfix
import pytest
from httpfix import MakeRuntime

from durable import Context, workflow
from durable.errors import PayloadTooLarge, RunClosed, RunNotFound, ValidationError

make_rt = httpfix.make_rt


@workflow
async def waiter(ctx: Context, _: Any) -> Any:
    hook = await ctx.create_hook("inner", metadata={"why": "review"})
    await ctx.emit_event("inside", {"n": 1})
    got = await ctx.wait_for_signal("go")
    return {"got": got, "token": hook.token}


async def wait_status(rt: Any, run_id: str, status: str) -> None:
    async with asyncio.timeout(10):
        while (await rt.get_run(run_id)).status != status:
            await asyncio.sleep(0.02)


async def counts(db: asyncpg.Connection) -> tuple[int, int, int, int]:
    return (
        await db.fetchval("SELECT count(*) FROM runs"),
        await db.fetchval("SELECT count(*) FROM hooks"),
        await db.fetchval("SELECT count(*) FROM run_events"),
        await db.fetchval("SELECT count(*) FROM inbox"),
    )


async def test_outside_hook_event_tags_and_lineage(
    make_rt: MakeRuntime, db: asyncpg.Connection
) -> None:
    async with make_rt(waiter, max_payload_bytes=1000) as rt:
        parent = await rt.trigger(waiter, None, tags={"team": "a"})
        h = await rt.trigger(waiter, None, parent_run_id=parent.run_id, tags={"team": "b"})
        await wait_status(rt, h.run_id, "suspended")
        info = await rt.get_run(h.run_id)
        assert info.parent_run_id == parent.run_id
        assert info.tags == {"team": "b"}
        assert info.started_at is not None and info.finished_at is None
        assert info.continued_as is None
        assert [r.run_id for r in await rt.get_child_runs(parent.run_id)] == [h.run_id]

        # Bad input: clear errors and nothing written.
        before = await counts(db)
        with pytest.raises(RunNotFound):
            await rt.emit_event("nope", "t")
        with pytest.raises(ValidationError):
            await rt.emit_event(h.run_id, "bad\x00type")
        with pytest.raises(PayloadTooLarge):
            await rt.emit_event(h.run_id, "big", "x" * 2000)
        with pytest.raises(RunNotFound):
            await rt.create_hook("nope", "go")
        with pytest.raises(ValidationError):
            await rt.create_hook(h.run_id, "")
        with pytest.raises(ValidationError):
            await rt.trigger(waiter, None, tags={"k": 1})  # type: ignore[dict-item]
        with pytest.raises(ValidationError):
            await rt.trigger(waiter, None, tags={"k\x00": "v"})
        with pytest.raises(RunNotFound):
            await rt.trigger(waiter, None, parent_run_id="nope")
        with pytest.raises(ValidationError):
            await rt.update_run(h.run_id, tags={"k": 5})  # type: ignore[dict-item]
        with pytest.raises(RunNotFound):
            await rt.update_run("nope", tags={"k": "v"})
        with pytest.raises(RunNotFound):
            await rt.get_hook("nope")
        assert await counts(db) == before

        await rt.emit_event(h.run_id, "outside", {"n": 2})
        token = await rt.create_hook(h.run_id, "go", metadata={"who": "ops"})
        hook = await rt.get_hook(token)
        assert (hook.run_id, hook.name, hook.metadata, hook.used_at) == (
            h.run_id,
            "go",
            {"who": "ops"},
            None,
        )
        inner = await db.fetchval("SELECT token FROM hooks WHERE name = 'inner'")
        assert (await rt.get_hook(inner)).metadata == {"why": "review"}

        updated = await rt.update_run(h.run_id, tags={"team": None, "env": "prod"})
        assert updated.tags == {"env": "prod"}
        tagged = await rt.list_runs(tags={"env": "prod"})
        assert [r.run_id for r in tagged] == [h.run_id]
        assert await rt.list_runs(tags={"team": "b"}) == []

        assert await rt.execute_hook(token, {"ok": True}) == h.run_id
        out = await h.result(timeout=10)
        assert out["got"] == {"ok": True}
        assert (await rt.get_hook(token)).used_at is not None
        with pytest.raises(RunClosed):
            await rt.execute_hook(token, None)
        events = await rt.get_events(h.run_id)
        assert [(e.seq, e.kind, e.payload) for e in events] == [
            (1, "inside", {"n": 1}),
            (2, "outside", {"n": 2}),
        ]
        # History holds only what the code did: replay never meets outside events.
        assert all(e.name != "outside" for e in (await rt.get_run(h.run_id)).history)
        done = await rt.get_run(h.run_id)
        assert done.finished_at is not None
        with pytest.raises(RunClosed):
            await rt.emit_event(h.run_id, "late")
        with pytest.raises(RunClosed):
            await rt.create_hook(h.run_id, "late")
        # Finished runs may still be re-labelled.
        assert (await rt.update_run(h.run_id, tags={"kept": "yes"})).tags["kept"] == "yes"


async def test_subscribe_sees_local_progress(make_rt: MakeRuntime) -> None:
    seen: list[tuple[str, str]] = []
    async with make_rt(waiter) as rt:
        stop = rt.subscribe(lambda run_id, what: seen.append((run_id, what)))
        h = await rt.trigger(waiter, None)
        await wait_status(rt, h.run_id, "suspended")
        await rt.signal(h.run_id, "go", 1)
        await h.result(timeout=10)
        stop()
        stop()  # idempotent
        mine = [what for run_id, what in seen if run_id == h.run_id]
        for what in ("created", "running", "suspended", "signal", "finished"):
            assert what in mine
        count = len(seen)
        await rt.trigger(waiter, None)
        assert len(seen) == count
