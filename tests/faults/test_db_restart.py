"""Database restart mid-load: workers reconnect on their own, nothing is lost or stuck.

A throwaway PostgreSQL (durable.embedded, in a temp dir the server's user can reach
when the suite runs as root) serves two in-process worker Runtimes executing N runs
(five steps, a durable sleep, a signal wait -- the signal is sent at trigger time --
and, for every fourth run, a child run). Mid-load the server is
restarted -- a fast shutdown (`stop_server`) or, in the long form, alternately an
immediate one (SIGQUIT to the postmaster: no checkpoint, crash recovery on start) --
then started again on the same data directory and port. Must hold:

- every run completes with the right output; no run is left running/pending;
- each step recorded once, histories contiguous; extra step executions bounded;
- no ERROR log record and no exception reaching the loop's exception handler (only
  WARNINGs for the failed claims/commits/heartbeats during the outage);
- the LISTEN connection comes back (new runs are picked up promptly);
- the DSN's password never appears in any log record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from durable import Context, Runtime, embedded, workflow

from .harness import capture_problems, check_histories, reachable_tmpdir, report, wait_for

SECRET = "hunter2-db-restart-secret"


@pytest.fixture
def own_pg() -> Iterator[tuple[Path, str]]:
    """A private server this test may restart; trust auth, so the password is inert."""
    base = reachable_tmpdir("durable-faults-pg-")
    data = base / "pg"
    try:
        embedded.find_bindir()
    except embedded.EmbeddedPostgresError as exc:
        pytest.skip(f"no PostgreSQL binaries for a private server: {exc}")
    try:
        yield data, embedded.ensure_server(data)
    finally:
        embedded.stop_server(data)
        shutil.rmtree(embedded.resolve_data_dir(data), ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


executed: Counter[tuple[str, int]] = Counter()
step_s = [0.03]  # set per size, so that outages land while steps are in flight


async def work(run_id: str, i: int) -> int:
    executed[(run_id, i)] += 1
    await asyncio.sleep(step_s[0])
    return i


@workflow(name="rs_wf")
async def rs_wf(ctx: Context, x: int) -> int:
    total = 0
    for i in range(5):
        total += await ctx.step(f"s{i}", work, ctx.run_id, i)
    await ctx.sleep("nap", "300ms")
    total += int(await ctx.wait_for_signal("go"))
    if x % 4 == 0:
        total += await ctx.child(rs_child, x)
    return total + await ctx.step("last", lambda: x)


@workflow(name="rs_child")
async def rs_child(ctx: Context, x: int) -> int:
    await ctx.sleep("child-nap", "50ms")
    return int(await ctx.step("c", lambda: 2 * x))


def expected(x: int) -> int:
    return 10 + 1 + (2 * x if x % 4 == 0 else 0) + x


def _crash(data: Path) -> None:
    """Immediate shutdown: SIGQUIT to the postmaster (what `pg_ctl -m immediate` sends)."""
    pidfile = embedded.resolve_data_dir(data) / "postmaster.pid"
    pid = int(pidfile.read_text().split()[0])
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if not pidfile.exists():
            return
        time.sleep(0.05)
    raise TimeoutError("postmaster did not exit after SIGQUIT")


async def _fetchval(dsn: str, sql: str) -> Any:
    """One query on a fresh connection; None while the server is down."""
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None
    try:
        return await conn.fetchval(sql)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None
    finally:
        await conn.close()


SIZES = [
    pytest.param({"runs": 40, "restarts": 1, "step_s": 0.1}, id="short"),
    pytest.param({"runs": 1000, "restarts": 4, "step_s": 0.3}, id="long", marks=pytest.mark.faults),
]


@pytest.mark.parametrize("size", SIZES)
async def test_workers_survive_database_restarts(
    own_pg: tuple[Path, str], rng: Any, size: Any
) -> None:
    data, plain_dsn = own_pg
    dsn = plain_dsn.replace("postgres@", f"postgres:{SECRET}@", 1)
    assert SECRET in dsn
    schema = "faults_restart"
    runs, restarts = size["runs"], size["restarts"]
    executed.clear()
    step_s[0] = size["step_s"]
    opts: dict[str, Any] = {
        "schema": schema,
        "workflows": [rs_wf, rs_child],
        "lease": "2s",
        "poll_interval": "200ms",
        "concurrency": 50,
        "shutdown_grace": "2s",
    }
    outages: list[dict[str, Any]] = []
    with capture_problems() as cap:
        async with Runtime(dsn, **opts) as w1, Runtime(dsn, **opts) as w2:
            handles = [await w1.trigger(rs_wf, i) for i in range(runs)]
            for h in handles:
                await w1.signal(h.run_id, "go", 1)  # buffered until the run waits
            total_steps = runs * 6 + len(range(0, runs, 4))  # s0-s4, last, child c
            # Spread over the steps phase (s0-s4 are 5/6 of all steps), one per slice.
            thresholds = [(k + rng.uniform(0.2, 0.8)) / restarts * 0.6 for k in range(restarts)]
            for k, threshold in enumerate(thresholds):
                target = int(threshold * total_steps)

                async def reached(target: int = target) -> bool:
                    n = await _fetchval(
                        plain_dsn,
                        f"SELECT count(*) FROM {schema}.events WHERE kind = 'step_completed'",
                    )
                    return n is not None and n >= target

                await wait_for(reached, timeout=120, interval=0.1, what=f"{target} steps")
                mode = "fast" if k % 2 == 0 else "immediate"
                running = await _fetchval(
                    plain_dsn, f"SELECT count(*) FROM {schema}.runs WHERE status = 'running'"
                )
                t0 = time.monotonic()
                if mode == "fast":
                    assert embedded.stop_server(data)
                else:
                    await asyncio.to_thread(_crash, data)
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                again = await asyncio.to_thread(embedded.ensure_server, data)
                assert again == plain_dsn, "the restarted server moved to another address"
                down = time.monotonic() - t0
                base = 0
                while (
                    n0 := await _fetchval(
                        plain_dsn,
                        f"SELECT count(*) FROM {schema}.events WHERE kind = 'step_completed'",
                    )
                ) is None:
                    await asyncio.sleep(0.05)
                base = n0

                async def progressing(before: int = base) -> bool:
                    n = await _fetchval(
                        plain_dsn,
                        f"SELECT count(*) FROM {schema}.events WHERE kind = 'step_completed'",
                    )
                    return n is not None and (n > before or n == total_steps)

                back = await wait_for(progressing, timeout=60, interval=0.05, what="progress")
                outages.append(
                    {
                        "mode": mode,
                        "running_at_stop": running,
                        "down_s": round(down, 2),
                        "next_step_after_up_s": round(back, 2),
                    }
                )

            async def all_done() -> bool:
                n = await _fetchval(
                    plain_dsn, f"SELECT count(*) FROM {schema}.runs WHERE status = 'completed'"
                )
                return n == runs + len(range(0, runs, 4))

            await wait_for(all_done, timeout=120, interval=0.2, what="all runs completed")
            outs = [await w1.handle(h.run_id).result(timeout=30) for h in handles]
            assert outs == [expected(i) for i in range(runs)]

            # LISTEN came back on both runtimes: fresh runs are picked up via NOTIFY.
            async def listening() -> bool:
                return all(rt._listener is not None and rt._listener.active for rt in (w1, w2))

            await wait_for(listening, timeout=10, what="listeners reconnected")
            latencies = []
            for i in range(3):
                t = time.monotonic()
                h = await w2.trigger(rs_wf, 1 + 4 * i)
                await w2.signal(h.run_id, "go", 1)
                await h.result(timeout=10)
                latencies.append(time.monotonic() - t)
        loop_errors = list(cap.loop_errors)
        records = list(cap.records)

    conn = await asyncpg.connect(plain_dsn, server_settings={"search_path": schema})
    try:
        await check_histories(conn)
        stuck = await conn.fetchval("SELECT count(*) FROM runs WHERE status <> 'completed'")
        assert stuck == 0
    finally:
        await conn.close()
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert not errors and not loop_errors, cap.text(logging.ERROR)[:6000]
    rendered = cap.text()
    assert SECRET not in rendered, "the DSN password leaked into the logs"
    warnings = Counter(
        re.sub(r"\d+", "N", re.sub(r"[0-9a-f]{32}", "<run>", r.getMessage()))[:70]
        for r in records
        if r.levelno == logging.WARNING
    )
    extras = sum(n - 1 for n in executed.values())
    # Every outage hit runs with work in flight (else it tested nothing).
    assert all(o["running_at_stop"] for o in outages), outages
    assert all(executed[(h.run_id, i)] >= 1 for h in handles for i in range(5))
    # An outage aborts at most the in-flight step of every run the two workers hold
    # (<= concurrency each); a second abort can follow on a stale pooled connection.
    assert extras <= restarts * 2 * (2 * 50)
    report(
        "db_restart",
        runs=runs,
        restarts=restarts,
        outages=outages,
        extra_step_executions=extras,
        new_run_latency_s_max=round(max(latencies), 3),
        warning_kinds=dict(warnings.most_common(6)),
        warnings_total=sum(warnings.values()),
    )
