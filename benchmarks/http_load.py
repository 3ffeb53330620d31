"""HTTP API load: many concurrent clients listing and fetching runs from `durable serve`.

    python benchmarks/http_load.py [--smoke] [--dsn DSN] [--runs N] [--clients C] [--seconds S]

Full size (issue 10): 100,000 finished runs, 200 concurrent clients for 30 s; target
p99 under 50 ms for both list (`GET /api/workflows/runs?limit=50`, half of them with a
workflow or tag filter, some following a cursor) and get (`GET /api/workflows/runs/{id}`
of a random run, with its history). The server is a real `durable serve` subprocess
(with its worker up) on a dedicated database; the clients share one asyncio process
(httpx), so client-side overhead is part of the figures.

Prints one JSON line per operation (system "durable-http", scenarios "http-list" and
"http-get") in the format of the other benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from durable import Context, Runtime, workflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_common_args, emit, latency_fields, log, recreate_database

HERE = Path(__file__).resolve().parent
DB_NAME = "durable_bench_http"
WORKFLOWS = ["ingest", "report", "billing", "sync"]


@workflow
async def ingest(ctx: Context, data: Any) -> Any:
    return data


async def seed(dsn: str, runs: int) -> list[str]:
    """Migrate, then bulk-insert `runs` finished runs (one 2-event history each)."""
    async with Runtime(dsn, worker=False, listen=False):
        pass
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "durable"})
    try:
        await conn.execute(
            "INSERT INTO runs (id, workflow, version, status, input, output, created_at,"
            " updated_at, started_at, finished_at, tags)"
            " SELECT lpad(to_hex(g), 32, '0'), ($2::text[])[1 + g % 4], '1', 'completed',"
            "  '\\x4d01'::bytea, '\\x4d02'::bytea, t, t, t, t + interval '10 ms',"
            "  jsonb_build_object('team', 't' || (g % 10))"
            " FROM generate_series(1, $1) g,"
            "  LATERAL (SELECT now() - make_interval(secs => ($1 - g) * 0.01)) s(t)",
            runs,
            WORKFLOWS,
        )
        await conn.execute(
            "INSERT INTO events (run_id, seq, pos, kind, name, payload, created_at)"
            " SELECT id, 1, 0, 'step_completed', 'work', '\\x4d01'::bytea, created_at FROM runs"
            " UNION ALL"
            " SELECT id, 2, -1, 'run_completed', '', NULL, finished_at FROM runs"
        )
        await conn.execute("VACUUM ANALYZE runs")
        await conn.execute("VACUUM ANALYZE events")
        return [r["id"] for r in await conn.fetch("SELECT id FROM runs")]
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def client(
    c: httpx.AsyncClient, ids: list[str], until: float, out: dict[str, list[float]]
) -> None:
    rng = random.Random()
    cursor: str | None = None
    while time.perf_counter() < until:
        if rng.random() < 0.5:
            params: dict[str, Any] = {"limit": 50}
            pick = rng.random()
            if pick < 0.25:
                params["workflow"] = rng.choice(WORKFLOWS)
            elif pick < 0.5:
                params["tag"] = f"team:t{rng.randrange(10)}"
            elif pick < 0.75 and cursor:
                params["cursor"] = cursor
            start = time.perf_counter()
            r = await c.get("/api/workflows/runs", params=params)
            out["list"].append(time.perf_counter() - start)
            r.raise_for_status()
            cursor = r.json()["next_cursor"]
        else:
            start = time.perf_counter()
            r = await c.get(f"/api/workflows/runs/{rng.choice(ids)}")
            out["get"].append(time.perf_counter() - start)
            r.raise_for_status()


async def load(url: str, ids: list[str], clients: int, seconds: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"list": [], "get": []}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as c:
        await c.get("/api/health")
        until = time.perf_counter() + seconds
        await asyncio.gather(*(client(c, ids, until, out) for _ in range(clients)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    runs = args.runs or (2_000 if args.smoke else 100_000)
    clients = args.clients or (10 if args.smoke else 200)
    seconds = args.seconds or (3.0 if args.smoke else 30.0)

    dsn = recreate_database(args.dsn, DB_NAME)
    log(f"seeding {runs} finished runs")
    ids = asyncio.run(seed(dsn, runs))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(HERE))
    env.pop("DURABLE_API_TOKEN", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "durable", "--dsn", dsn, "serve", "http_load", "--port", str(port)],
        env=env,
        cwd=HERE,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("durable serve did not come up")
            time.sleep(0.1)
        log(f"{clients} clients for {seconds:g} s against {url}")
        out = asyncio.run(load(url, ids, clients, seconds))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    sizes = {"runs": runs, "clients": clients, "seconds": int(seconds)}
    for op in ("list", "get"):
        emit(
            "durable-http",
            f"http-{op}",
            sizes=sizes,
            wall_s=seconds,
            count=len(out[op]),
            unit="requests/s",
            **latency_fields(out[op]),
        )


if __name__ == "__main__":
    main()
