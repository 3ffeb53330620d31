"""`handle.result()` outlives killed database connections.

Issue 16, item 7: after 3 s of killed backends, 41 of 50 `result()` waits raised
`ConnectionDoesNotExistError` or `InternalClientError`, though their runs completed.
`result()` now retries transient database errors (`durable.outage.transient_error`)
with backoff until its own timeout, and raises only the others.

The waiting runtime's own connections (its pool and its LISTEN connection, found by
their server pids: other sessions on the server are never touched) are terminated
every 100 ms while 50 handles wait; meanwhile another runtime, untouched, completes
the runs. Every `result()` must return its run's output.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import pytest

from durable import Context, Runtime, workflow

from .conftest import MakeRuntime
from .harness import report, wait_for


@workflow(name="held")
async def held(ctx: Context, i: int) -> int:
    await ctx.wait_for_signal("go")
    return i * 10


def backend_pids(rt: Runtime) -> set[int]:
    """Server pids of the runtime's open connections (pool, listener)."""
    conns: list[Any] = [h._con for h in rt.store.pool._holders]  # type: ignore[attr-defined]
    listener = getattr(rt._listener, "_conn", None)
    conns.append(listener)
    return {c.get_server_pid() for c in conns if c is not None and not c.is_closed()}


@pytest.mark.parametrize("listen", [False, True])
async def test_result_retries_transient_errors_while_backends_are_killed(
    make_rt: MakeRuntime, dsn: str, db: Any, listen: bool
) -> None:
    n = 50
    admin = await asyncpg.connect(dsn)
    try:
        async with (
            make_rt(held, lease="10s") as worker,
            make_rt(held, worker=False, listen=listen, pool_size=5) as waiter,
        ):
            handles = [await waiter.trigger(held, i) for i in range(n)]

            async def all_waiting() -> bool:
                got = await db.fetchval("SELECT count(*) FROM runs WHERE status = 'suspended'")
                return bool(got == n)

            await wait_for(all_waiting, timeout=60, what="runs waiting for their signal")
            waits = [asyncio.create_task(h.result(timeout=120)) for h in handles]
            killed = 0
            for round_ in range(30):
                for pid in backend_pids(waiter):
                    killed += bool(await admin.fetchval("SELECT pg_terminate_backend($1)", pid))
                if round_ == 5:
                    for h in handles:  # the worker's connections are left alone
                        await worker.signal(h.run_id, "go")
                await asyncio.sleep(0.1)
            outcomes = await asyncio.gather(*waits, return_exceptions=True)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    errors = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    report("result_outage", listen=listen, waits=n, backends_killed=killed, errors=len(errors))
    assert killed > 0, "no backend of the waiting runtime was terminated"
    assert not errors, errors[:5]
    assert outcomes == [i * 10 for i in range(n)]
