"""Bad input and API misuse: typed errors, and nothing written when a call is rejected.

Covers the catalogue's "bad input" group for the public API: schema validation,
unknown workflows, unencodable values, bad durations, payload limits, input to
unknown/finished runs, reused hook tokens, cancelling finished runs, non-determinism
from state read outside ctx, and names/payloads carrying quotes, semicolons, NUL and
SQL text (stored verbatim; tables intact).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import msgspec
import pytest

from durable import (
    Context,
    PayloadTooLarge,
    RetryPolicy,
    RunClosed,
    RunNotFound,
    Runtime,
    SerializationError,
    StepFailed,
    ValidationError,
    WorkflowFailed,
    WorkflowNotFound,
    workflow,
)

from .conftest import MakeRuntime
from .harness import check_histories, wait_for

TABLES = ("runs", "events", "inbox", "hooks")


async def counts(db: Any) -> dict[str, int]:
    return {t: int(await db.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}


async def nothing_written(db: Any) -> None:
    assert await counts(db) == dict.fromkeys(TABLES, 0)


async def wait_status(rt: Runtime, run_id: str, status: str) -> None:
    async def ok() -> bool:
        return await rt.handle(run_id).status() == status

    await wait_for(ok, timeout=15, what=f"{run_id} {status}")


class Order(msgspec.Struct):
    order_id: int
    amount: int


@workflow(name="order", schema=Order)
async def order_wf(ctx: Context, order: Order) -> int:
    return order.amount


@workflow(name="echo")
async def echo(ctx: Context, inp: Any) -> Any:
    return inp


@workflow(name="waiter")
async def waiter(ctx: Context, _: Any) -> Any:
    return await ctx.wait_for_signal("go")


# -- rejected before anything is written ------------------------------------------


async def test_rejected_triggers_write_nothing(make_rt: MakeRuntime, db: Any) -> None:
    async with make_rt(order_wf, echo, worker=False) as rt:
        for bad in ({"order_id": "x", "amount": 1}, {"order_id": 1}, [1, 2], None, "order"):
            with pytest.raises(ValidationError, match="order"):
                await rt.trigger(order_wf, bad)
        with pytest.raises(WorkflowNotFound, match="nope"):
            await rt.trigger("nope", {})
        with pytest.raises(WorkflowNotFound, match="version"):
            await rt.trigger("echo", {}, version="9")
        for unencodable in (object(), lambda: 1, {"k": object()}, [1, {2, object()}]):
            with pytest.raises(SerializationError, match="echo"):
                await rt.trigger(echo, unencodable)
        with pytest.raises(TypeError):
            await rt.trigger(42, {})  # type: ignore[arg-type]
        await nothing_written(db)
        # The same runtime still works after all that.
        h = await rt.trigger(order_wf, {"order_id": 1, "amount": 5})
        assert await rt.handle(h.run_id).status() == "pending"


@pytest.mark.parametrize("bad", ["-1s", "5 parsecs", None, "", "1 s s", float("nan"), -3, True])
async def test_bad_durations_raise_value_error(
    make_rt: MakeRuntime, dsn: str, db: Any, bad: Any
) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        Runtime(dsn, lease=bad)
    with pytest.raises(ValueError, match="invalid duration"):
        Runtime(dsn, poll_interval=bad)
    with pytest.raises(ValueError, match="invalid duration"):
        RetryPolicy(initial_interval=bad)

    # None is a valid *timeout* (no timeout) but not a valid sleep duration.
    timeouts = bad is not None

    @workflow(name="durations")
    async def durations(ctx: Context, _: Any) -> list[str]:
        errors = []
        calls = [lambda: ctx.sleep("nap", bad)]
        if timeouts:
            calls.append(lambda: ctx.wait_for_signal("sig", timeout=bad))
            calls.append(lambda: ctx.step("s", lambda: 1, timeout=bad))
        for call in calls:
            try:
                await call()
            except ValueError as exc:
                errors.append(type(exc).__name__)
        await ctx.step("after", lambda: 2)
        return errors

    async with make_rt(durations) as rt:
        h = await rt.trigger(durations, None)
        assert await h.result(timeout=10) == ["ValueError"] * (3 if timeouts else 1)
        if timeouts:
            with pytest.raises(ValueError, match="invalid duration"):
                await h.result(timeout=bad)
        info = await rt.get_run(h.run_id)
    # The rejected calls took no history position and recorded nothing.
    assert [(e.kind, e.name, e.pos) for e in info.history] == [
        ("step_completed", "after", 0),
        ("run_completed", "", -1),
    ]


# -- payload limits ------------------------------------------------------------------


LIMIT = 1000


async def test_payload_limit_on_input_signal_and_hook(make_rt: MakeRuntime, db: Any) -> None:
    @workflow(name="hooked")
    async def hooked(ctx: Context, _: Any) -> Any:
        hook = await ctx.create_hook("h")
        return await hook.wait()

    async with make_rt(echo, waiter, hooked, max_payload_bytes=LIMIT) as rt:
        with pytest.raises(PayloadTooLarge, match="input of workflow 'echo'"):
            await rt.trigger(echo, "x" * LIMIT)
        await nothing_written(db)
        fits = "y" * (LIMIT - 10)
        assert await (await rt.trigger(echo, fits)).result(timeout=10) == fits

        w = await rt.trigger(waiter, None)
        await wait_status(rt, w.run_id, "suspended")
        before = await counts(db)
        with pytest.raises(PayloadTooLarge, match="signal 'go'"):
            await rt.signal(w.run_id, "go", b"z" * LIMIT)
        hk = await rt.trigger(hooked, None)
        await wait_status(rt, hk.run_id, "suspended")
        token = await db.fetchval("SELECT token FROM hooks")
        before = await counts(db)
        with pytest.raises(PayloadTooLarge, match="hook payload"):
            await rt.execute_hook(token, ["z" * LIMIT])
        assert await counts(db) == before
        assert await db.fetchval("SELECT used_at FROM hooks") is None  # still usable
        await rt.signal(w.run_id, "go", "small")
        await rt.execute_hook(token, "ok")
        assert await w.result(timeout=10) == "small"
        assert await hk.result(timeout=10) == "ok"


async def test_oversize_step_result_fails_the_step(make_rt: MakeRuntime, db: Any) -> None:
    calls: list[int] = []

    def big() -> str:
        calls.append(1)
        return "x" * (2 * LIMIT)

    @workflow(name="big_once")
    async def big_once(ctx: Context, _: Any) -> Any:
        try:
            await ctx.step("big", big, retry=RetryPolicy(max_attempts=1))
        except StepFailed as exc:
            return exc.error_type
        return "unreachable"

    @workflow(name="big_result")
    async def big_result(ctx: Context, _: Any) -> Any:
        return "r" * (2 * LIMIT)

    async with make_rt(big_once, big_result, max_payload_bytes=LIMIT) as rt:
        h = await rt.trigger(big_once, None)
        assert await h.result(timeout=10) == "PayloadTooLarge"
        info = await rt.get_run(h.run_id)
        failed = [e for e in info.history if e.kind == "step_failed"]
        assert len(failed) == 1 and "over the limit" in failed[0].payload["message"]
        assert not any(e.kind == "step_completed" for e in info.history)
        r = await rt.trigger(big_result, None)
        with pytest.raises(WorkflowFailed, match="PayloadTooLarge"):
            await r.result(timeout=10)
    assert calls == [1]
    await check_histories(db)


async def test_oversize_step_result_is_not_retried(make_rt: MakeRuntime) -> None:
    """Regression: the result-size check used to sit in the step's retry path, so an
    oversize result was retried with backoff up to max_attempts (re-running the body)."""
    calls: list[int] = []

    def big() -> str:
        calls.append(1)
        return "x" * (2 * LIMIT)

    @workflow(name="big_default", retry_policy=RetryPolicy(max_attempts=3, initial_interval="10ms"))
    async def big_default(ctx: Context, _: Any) -> Any:
        await ctx.step("big", big)

    async with make_rt(big_default, max_payload_bytes=LIMIT) as rt:
        h = await rt.trigger(big_default, None)
        with pytest.raises(WorkflowFailed, match="PayloadTooLarge"):
            await h.result(timeout=10)
    # Re-running a step whose result can never fit only repeats its side effects.
    assert calls == [1], f"the step body ran {len(calls)} times"


# -- input to runs that cannot take it -----------------------------------------------


async def test_signals_hooks_and_cancel_on_unknown_or_finished_runs(
    make_rt: MakeRuntime, db: Any
) -> None:
    @workflow(name="hook_once")
    async def hook_once(ctx: Context, _: Any) -> Any:
        hook = await ctx.create_hook("h")
        return await hook.wait()

    async with make_rt(echo, hook_once, waiter) as rt:
        with pytest.raises(RunNotFound):
            await rt.signal("no-such-run", "go", 1)
        with pytest.raises(RunNotFound):
            await rt.cancel("no-such-run")
        for token in ("no-such-token", "", "a\x00b", None):
            with pytest.raises(RunNotFound):
                await rt.execute_hook(token, 1)  # type: ignore[arg-type]
        await nothing_written(db)

        done = await rt.trigger(echo, "fin")
        assert await done.result(timeout=10) == "fin"
        before = await db.fetch("SELECT * FROM events ORDER BY run_id, seq")
        with pytest.raises(RunClosed, match="completed"):
            await rt.signal(done.run_id, "go", 1)
        with pytest.raises(RunClosed, match="completed"):
            await rt.cancel(done.run_id)
        assert await rt.handle(done.run_id).status() == "completed"

        hk = await rt.trigger(hook_once, None)
        await wait_status(rt, hk.run_id, "suspended")
        token = await db.fetchval("SELECT token FROM hooks")
        assert await rt.execute_hook(token, "first") == hk.run_id
        with pytest.raises(RunClosed, match="already used"):
            await rt.execute_hook(token, "second")
        assert await hk.result(timeout=10) == "first"
        with pytest.raises(RunClosed):
            await rt.execute_hook(token, "third")

        # Cancel: once accepted, a second cancel is refused and adds nothing.
        w = await rt.trigger(waiter, None)
        await wait_status(rt, w.run_id, "suspended")
        await rt.cancel(w.run_id)
        with pytest.raises(RunClosed, match="cancelled"):
            await rt.cancel(w.run_id)
        with pytest.raises(RunClosed):
            await rt.signal(w.run_id, "go", 1)
        kinds = [e.kind for e in (await rt.get_run(w.run_id)).history]
        # (then the cleanup a worker runs for the cancelled run: cleanup_finished)
        assert kinds[:2] == ["signal_waiting", "run_cancelled"]
        assert kinds[2:] in ([], ["cleanup_finished"])
        after = await db.fetch("SELECT * FROM events WHERE run_id = $1 ORDER BY seq", done.run_id)
    assert [r for r in before if r["run_id"] == done.run_id] == after
    assert await db.fetchval("SELECT count(*) FROM inbox") == 0
    await check_histories(db)


# -- non-determinism from state outside ctx ------------------------------------------

_counter = itertools.count()


@workflow(name="drifting")
async def drifting(ctx: Context, _: Any) -> Any:
    # Reads module state that changes between executions: the path differs on replay.
    branch = "even" if next(_counter) % 2 == 0 else "odd"
    await ctx.step(f"first-{branch}", lambda: branch)
    await ctx.wait_for_signal("go")
    return await ctx.step("after", lambda: "after")


async def test_nondeterministic_path_is_detected_and_parked(make_rt: MakeRuntime, db: Any) -> None:
    global _counter
    _counter = itertools.count()
    # sticky_cache=0: the signal wakes the run by replay, where the counter has moved on.
    async with make_rt(drifting, sticky_cache=0) as rt:
        h = await rt.trigger(drifting, None)
        await wait_status(rt, h.run_id, "suspended")
        before = await db.fetch("SELECT seq, pos, kind, name, payload FROM events ORDER BY seq")
        await rt.signal(h.run_id, "go", 1)
        with pytest.raises(WorkflowFailed, match="NonDeterminismError") as err:
            await h.result(timeout=10)
        after = await db.fetch("SELECT seq, pos, kind, name, payload FROM events ORDER BY seq")
        info = await rt.get_run(h.run_id)
        await asyncio.sleep(0.5)  # parked: nobody picks it up again
        assert (await rt.get_run(h.run_id)).updated_at == info.updated_at
    assert "'first-odd'" in (err.value.error or "") and "'first-even'" in (err.value.error or "")
    assert info.status == "failed"
    # History unchanged: no run_failed event, nothing appended by the diverged replay.
    assert before == after
    assert [r["kind"] for r in after] == ["step_completed", "signal_waiting"]
    # The signal stays in the inbox: the diverged replay consumed nothing.
    assert await db.fetchval("SELECT count(*) FROM inbox") == 1


# -- names and payloads with quotes, semicolons, NUL and SQL --------------------------

NASTY = [
    "x'); DROP TABLE runs; --",
    'q"uote"; DELETE FROM events WHERE true; --',
    "$$; TRUNCATE inbox; $$",
    "back\\slash\\'; select pg_sleep(10); --",
    "ünïcødé ＇；DROP",  # full-width quote and semicolon
]


async def test_names_and_payloads_with_sql_text_are_stored_verbatim(
    make_rt: MakeRuntime, db: Any
) -> None:
    payload = {
        "nul": "a\x00b",
        "sql": NASTY,
        "bytes": b"\x00\x01'\x00;",
        "nested": {"k'; --": ["\x00"]},
    }

    @workflow(name=NASTY[0], version=NASTY[2])
    async def nasty(ctx: Context, inp: Any) -> Any:
        got = [await ctx.step(name, lambda v=inp: v) for name in NASTY]
        await ctx.emit_event(NASTY[1], inp)
        hook = await ctx.create_hook(NASTY[3])
        await ctx.step("token", lambda: hook.token)
        signal = await ctx.wait_for_signal(NASTY[4])
        hooked = await hook.wait()
        return [got[-1], signal, hooked]

    async with make_rt(nasty) as rt:
        h = await rt.trigger(nasty, payload, run_id=NASTY[1], idempotency_key=NASTY[3])
        assert h.run_id == NASTY[1]
        await rt.signal(h.run_id, NASTY[4], payload)
        await wait_status(rt, h.run_id, "suspended")
        token = await db.fetchval("SELECT token FROM hooks")
        await rt.execute_hook(token, payload)
        out = await h.result(timeout=10)
        assert out == [payload, payload, payload]
        info = await rt.get_run(h.run_id)
        assert info.workflow == NASTY[0] and info.version == NASTY[2]
        assert info.input == payload
        names = [e.name for e in info.history if e.kind == "step_completed"]
        assert names == [*NASTY, "token"]
        events = await rt.get_events(h.run_id)
        assert [(e.kind, e.payload) for e in events] == [(NASTY[1], payload)]
        again = await rt.trigger(nasty, None, idempotency_key=NASTY[3])
        assert again.run_id == NASTY[1] and not again.created
    tables = {
        r["tablename"]
        for r in await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    }
    assert {"runs", "events", "inbox", "hooks", "schedules", "migrations"} <= tables
    assert await db.fetchval("SELECT count(*) FROM runs") == 1
    await check_histories(db)


async def test_names_with_nul_are_rejected_clearly(make_rt: MakeRuntime, db: Any) -> None:
    with pytest.raises(ValidationError, match="NUL"):

        @workflow(name="bad\x00name")
        async def bad(ctx: Context, _: Any) -> None: ...

    with pytest.raises(ValidationError, match="NUL"):
        workflow(name="ok", version="1\x00")(echo.fn)

    @workflow(name="nul_inside")
    async def nul_inside(ctx: Context, _: Any) -> list[str]:
        seen = []
        for call in (
            lambda: ctx.step("s\x00", lambda: 1),
            lambda: ctx.sleep("z\x00", "1ms"),
            lambda: ctx.wait_for_signal("g\x00"),
            lambda: ctx.emit_event("e\x00", 1),
            lambda: ctx.create_hook("h\x00"),
        ):
            try:
                await call()
            except ValidationError as exc:
                assert "NUL" in str(exc)
                seen.append("rejected")
        return seen

    async with make_rt(echo, nul_inside) as rt:
        for kwargs in ({"run_id": "r\x00"}, {"idempotency_key": "k\x00"}, {"run_id": ""}):
            with pytest.raises(ValidationError, match="NUL"):
                await rt.trigger(echo, 1, **kwargs)
        await nothing_written(db)
        h = await rt.trigger(echo, None)
        await h.result(timeout=10)
        for name in ("s\x00ig", ""):
            with pytest.raises(ValidationError, match="NUL"):
                await rt.signal(h.run_id, name, 1)
        n = await rt.trigger(nul_inside, None)
        assert await n.result(timeout=10) == ["rejected"] * 5
        assert [e.kind for e in (await rt.get_run(n.run_id)).history] == ["run_completed"]
    assert await db.fetchval("SELECT count(*) FROM inbox") == 0
