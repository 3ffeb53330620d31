"""HTTP API load: many concurrent clients listing and fetching runs from `durable serve`.

    python benchmarks/http_load.py [--smoke] [--dsn DSN] [--modes closed,paced,worker]
        [--runs N] [--clients C] [--seconds S] [--think S] [--client-procs P]
        [--worker-runs N] [--repeats R] [--worker process|serve] [--profile FILE]
        [--server-procs N] [--server-nice N] [--client-nice N] [--db-name NAME]

Full size (issue 10): 100,000 finished runs, 200 concurrent clients for 30 s; target
p99 under 50 ms for both list (`GET /api/workflows/runs?limit=50`, half of them with a
workflow or tag filter, a quarter following a cursor) and get
(`GET /api/workflows/runs/{id}` of a random run, with its history), with the worker's
throughput within 15 %. The server is a real `durable serve --no-worker` subprocess
with a `durable worker` process beside it (`--worker serve`: the worker inside
`durable serve` instead), on a dedicated database.

Modes (each reports p50/p99 of list and get, the achieved request rate, and the CPU
time per request of the server process, the clients and PostgreSQL's backends):

- `closed`: every client sends its next request as soon as the previous answer is in
  (no think time): the server's saturation throughput, and the latency at saturation.
  By Little's law 200 such clients see p99 < 50 ms only above ~4,000 requests/s.
- `paced`: every client waits a think time between requests (`--think`, default 1 s,
  uniformly jittered by ±50 %), as dashboards polling do: 200 clients offer ~200
  requests/s; the latency is then the server's answer time at that rate.
- `worker`: scenario 1 (`--worker-runs` runs of 10 steps, default 1,000, triggered
  from here) executed by the worker, once alone and once under the paced load,
  `--repeats` times interleaved; reports both throughputs and their ratio (target
  >= 0.85), plus the latencies of the paced requests sent while the worker ran.

The clients are a minimal keep-alive HTTP/1.1 client (an asyncio protocol, on uvloop
when installed), spread over `--client-procs` processes: under 100 µs of CPU per
request, so the figures measure the server rather than the client (httpx: over 1 ms).
They are load generators, not the system under test, yet they share the two cores with
it: in the paced and worker modes they run at a low OS priority (`--client-nice`,
default 10, via os.nice), so while the worker saturates the machine they take the cycles
it leaves rather than its own (a deployment's browsers run elsewhere). In the closed
mode they stay at nice 0: there they pace the measurement, and a starved client would
measure itself (seen: 2 server processes answered 1,382-1,551 req/s to niced clients).
`--server-procs N` serves with `durable serve --processes N`; `--server-nice N` starts
the API process(es) at nice N (the operations advice measured: an API process below the
worker in priority).
`--profile FILE` runs the server under cProfile timed by its CPU clock.

Prints one JSON line per result (system "durable-http"; scenarios "http-list",
"http-get" with a `mode` field, and "http-worker") in the format of the other
benchmarks. Any failed request fails the benchmark (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

from durable import Context, Runtime, workflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_common_args, emit, latency_fields, log, process_cpu_ns, recreate_database

HERE = Path(__file__).resolve().parent
DB_NAME = os.environ.get("DURABLE_BENCH_DB", "durable_bench_http")
WORKFLOWS = ["ingest", "report", "billing", "sync"]
HOST = "127.0.0.1"


# -- the app `durable serve http_load` loads --------------------------------------------


@workflow
async def ingest(ctx: Context, data: Any) -> Any:
    return data


async def noop() -> None:
    return None


@workflow(name="ten_steps")
async def ten_steps(ctx: Context, _: Any) -> int:
    """Scenario 1's workflow: ten no-op steps."""
    for i in range(10):
        await ctx.step(f"s{i}", noop)
    return 10


# -- seeding ----------------------------------------------------------------------------


async def seed(dsn: str, runs: int) -> None:
    """Migrate, then bulk-insert `runs` finished runs (one 2-event history each).

    Run ids are `lpad(to_hex(g), 32, '0')` for g in 1..runs, so clients draw ids to get
    without being sent the list.
    """
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
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


# -- the load client (runs in its own processes) ----------------------------------------


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: GETs one at a time, answers with a
    Content-Length. A bare protocol (no StreamReader): the client's CPU per request
    stays a small fraction of the server's."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[bytes, bytes]] | None = None
        self.body_at = self.end = -1
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("connection closed"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.end < 0:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(buf[:head_end]).lower()
            start = head.find(b"\r\ncontent-length:")
            if start < 0:
                raise RuntimeError(f"answer without content-length: {head[:200]!r}")
            stop = head.find(b"\r\n", start + 2)
            length = int(head[start + 17 : stop if stop > 0 else len(head)])
            self.body_at = head_end + 4
            self.end = self.body_at + length
        if len(buf) >= self.end:
            head, body = bytes(buf[: self.body_at]), bytes(buf[self.body_at : self.end])
            del buf[: self.end]
            self.body_at = self.end = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((head, body))

    async def get(self, target: str) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head, body = await self.waiter
        if head[9:12] != b"200":
            raise RuntimeError(f"{target}: {head[:12]!r} {body[:200]!r}")
        if b"\r\nconnection: close" in head.lower():
            self.transport.close()
        return body


class Client:
    """Reconnects when the server closed an idle keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: Conn | None = None

    def close(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()
        self.conn = None

    async def get(self, target: str) -> bytes:
        for attempt in (0, 1):
            if self.conn is None or self.conn.closed:
                loop = asyncio.get_running_loop()
                _, self.conn = await loop.create_connection(Conn, HOST, self.port)
            try:
                return await self.conn.get(target)
            except ConnectionResetError:
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def next_cursor(page: bytes) -> str | None:
    """The page's `next_cursor` (the last key of a RunPage) without decoding the page."""
    at = page.rfind(b'"next_cursor":')
    if at < 0:
        raise RuntimeError(f"no next_cursor in {page[-200:]!r}")
    value = page[at + 14 :].lstrip()
    if value.startswith(b"null"):
        return None
    return value[1 : value.index(b'"', 1)].decode()


async def one_client(
    port: int, runs: int, think: float, until: float, stop: asyncio.Event, out: dict[str, Any]
) -> None:
    rng = random.Random()
    conn = Client(port)
    cursor: str | None = None
    # (when sent, seconds to answer): perf_counter is CLOCK_MONOTONIC, comparable across
    # processes, so the parent can pick the requests sent while the worker was busy.
    lists: list[tuple[float, float]] = out["list"]
    gets: list[tuple[float, float]] = out["get"]
    if think:  # spread the first requests over one think time
        await asyncio.sleep(rng.uniform(0, think))
    try:
        while not stop.is_set() and time.perf_counter() < until:
            try:
                if rng.random() < 0.5:
                    target = "/api/workflows/runs?limit=50"
                    pick = rng.random()
                    if pick < 0.25:
                        target += "&workflow=" + rng.choice(WORKFLOWS)
                    elif pick < 0.5:
                        target += "&tag=" + quote(f"team:t{rng.randrange(10)}")
                    elif pick < 0.75 and cursor:
                        target += "&cursor=" + quote(cursor)
                    start = time.perf_counter()
                    body = await conn.get(target)
                    lists.append((start, time.perf_counter() - start))
                    cursor = next_cursor(body)
                else:
                    target = f"/api/workflows/runs/{rng.randint(1, runs):032x}"
                    start = time.perf_counter()
                    await conn.get(target)
                    gets.append((start, time.perf_counter() - start))
            except Exception as exc:  # counted and reported, never silently dropped
                out["errors"] += 1
                out["last_error"] = f"{type(exc).__name__}: {exc}"[:300]
                conn.close()
                await asyncio.sleep(0.05)
            if think:
                pause = think * rng.uniform(0.5, 1.5)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, min(pause, until - time.perf_counter()))):
                        await stop.wait()
    finally:
        conn.close()


async def client_main(port: int, runs: int, clients: int, seconds: float, think: float) -> None:
    """One load process: `clients` clients until `seconds` pass or stdin closes (its
    priority was lowered by `--client-nice` before the loop started)."""
    stop = asyncio.Event()

    class StdinClosed(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            stop.set()

    await asyncio.get_running_loop().connect_read_pipe(StdinClosed, sys.stdin)
    out: dict[str, Any] = {"list": [], "get": [], "errors": 0, "last_error": None}
    cpu0 = process_cpu_ns()
    t0 = time.perf_counter()
    until = t0 + seconds
    await asyncio.gather(*(one_client(port, runs, think, until, stop, out) for _ in range(clients)))
    out["elapsed_s"] = time.perf_counter() - t0
    out["cpu_ns"] = process_cpu_ns() - cpu0
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


def run_loop(main: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# -- the parent: server, phases, measurements -------------------------------------------


class Load:
    """`procs` client processes sharing `clients` clients; `stop()` ends them early."""

    def __init__(
        self,
        port: int,
        runs: int,
        clients: int,
        procs: int,
        seconds: float,
        think: float,
        nice: int,
    ) -> None:
        self.procs: list[asyncio.subprocess.Process] = []
        self.args = (port, runs, clients, procs, seconds, think)
        self.nice = nice

    async def start(self) -> None:
        port, runs, clients, procs, seconds, think = self.args
        shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
        for share in shares:
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--client",
                    json.dumps([port, runs, share, seconds, think, self.nice]),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )

    def stop(self) -> None:
        for p in self.procs:
            if p.stdin is not None and not p.stdin.is_closing():
                p.stdin.close()

    async def results(self) -> dict[str, Any]:
        merged: dict[str, Any] = {"list": [], "get": [], "errors": 0, "cpu_ns": 0, "elapsed": 0.0}
        for p in self.procs:
            stdout, _ = await p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"a load process exited {p.returncode}")
            part = json.loads(stdout)
            merged["list"] += part["list"]
            merged["get"] += part["get"]
            merged["errors"] += part["errors"]
            merged["cpu_ns"] += part["cpu_ns"]
            merged["elapsed"] = max(merged["elapsed"], part["elapsed_s"])
            if part["last_error"]:
                log(f"load process error ({part['errors']}x), last: {part['last_error']}")
        return merged


class Meter:
    """On-CPU time of the server process and of the benchmark database's backends."""

    def __init__(self, conn: asyncpg.Connection, server_pid: int) -> None:
        self.conn = conn
        self.server_pid = server_pid

    async def _backends(self) -> dict[int, int]:
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
        return {r["pid"]: process_cpu_ns(r["pid"]) for r in rows}

    def _server(self) -> int:
        """The server process and its children (`durable serve --processes N`)."""
        pids = {str(self.server_pid)}
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{self.server_pid}/task"):
                with open(f"/proc/{self.server_pid}/task/{tid}/children") as f:
                    pids.update(f.read().split())
        return sum(process_cpu_ns(pid) for pid in pids)

    async def start(self) -> None:
        self.server0 = self._server()
        self.pg0 = await self._backends()

    async def stop(self) -> dict[str, int]:
        server = self._server() - self.server0
        pg = sum(ns - self.pg0.get(pid, 0) for pid, ns in (await self._backends()).items())
        return {"server_ns": server, "pg_ns": pg}


class Bench:
    def __init__(self, args: argparse.Namespace, dsn: str, port: int, server_pid: int) -> None:
        self.args = args
        self.dsn = dsn
        self.port = port
        self.server_pid = server_pid
        self.sizes = {"runs": args.runs, "clients": args.clients, "seconds": int(args.seconds)}
        self.errors = 0  # failed requests: any makes the benchmark fail

    def load(self, seconds: float, think: float) -> Load:
        a = self.args
        # Closed loop: the clients pace the whole measurement, so a niced client starved
        # by the server processes would measure itself; they run at nice 0 there.
        nice = a.client_nice if think else 0
        return Load(self.port, a.runs, a.clients, a.client_procs, seconds, think, nice)

    async def timed_load(self, seconds: float, think: float) -> dict[str, Any]:
        load = self.load(seconds, think)
        await self.meter.start()
        await load.start()
        out = await load.results()
        out.update(await self.meter.stop())
        return out

    def report(self, mode: str, think: float, out: dict[str, Any], wall: float) -> None:
        """One line per operation; CPU per request when `out` has the meters' figures."""
        total = len(out["list"]) + len(out["get"])
        self.errors += out["errors"]
        common: dict[str, Any] = {
            "mode": mode,
            "think_s": think,
            "achieved_rps": total / wall,
            "errors": out["errors"],
            "client_procs": self.args.client_procs,
            "client_nice": self.args.client_nice if think else 0,
            "server_procs": self.args.server_procs,
            "server_nice": self.args.server_nice,
            "worker": self.args.worker,
        }
        if think:
            common["offered_rps"] = self.args.clients / think
        if "server_ns" in out:
            per = 1000.0 * max(total, 1)  # ns -> µs per request
            common["server_cpu_us_per_req"] = out["server_ns"] / per
            common["client_cpu_us_per_req"] = out["cpu_ns"] / per
            common["pg_cpu_us_per_req"] = out["pg_ns"] / per
        for op in ("list", "get"):
            emit(
                "durable-http",
                f"http-{op}",
                sizes=self.sizes,
                wall_s=wall,
                count=len(out[op]),
                unit="requests/s",
                **latency_fields(dt for _, dt in out[op]),
                **common,
            )

    async def worker_round(self, rt: Runtime, n: int) -> tuple[float, float, float]:
        """Scenario 1 through the server's worker: trigger `n` runs of 10 steps and wait
        for every result. Returns (steps per second, start, end)."""
        sem = asyncio.Semaphore(50)

        async def one() -> Any:
            async with sem:
                return await rt.trigger(ten_steps, None)

        t0 = time.perf_counter()
        handles = await asyncio.gather(*(one() for _ in range(n)))
        await asyncio.gather(*(h.result(timeout=600) for h in handles))
        t1 = time.perf_counter()
        return n * 10 / (t1 - t0), t0, t1

    async def worker_phase(self) -> None:
        a = self.args
        alone: list[float] = []
        loaded: list[float] = []
        during: dict[str, Any] = {"list": [], "get": [], "errors": 0}
        busy = 0.0
        async with Runtime(self.dsn, workflows=[ten_steps], worker=False) as rt:
            await self.worker_round(rt, 50)  # warm-up: the worker's connections and plans
            for i in range(a.repeats):
                alone.append((await self.worker_round(rt, a.worker_runs))[0])
                load = self.load(3600.0, a.think)
                await load.start()
                await asyncio.sleep(a.think * 1.5 + 0.5)  # every client has started
                rate, t0, t1 = await self.worker_round(rt, a.worker_runs)
                loaded.append(rate)
                busy += t1 - t0
                load.stop()
                out = await load.results()
                for key in ("list", "get"):
                    during[key] += [(s, dt) for s, dt in out[key] if t0 <= s < t1]
                during["errors"] += out["errors"]
                log(
                    f"worker round {i + 1}: alone {alone[-1]:,.0f} steps/s,"
                    f" under paced load {loaded[-1]:,.0f} steps/s"
                )
        # The paced requests sent while the worker was running scenario 1.
        self.report("paced+worker", a.think, during, busy)
        base = statistics.median(alone)
        under = statistics.median(loaded)
        emit(
            "durable-http",
            "http-worker",
            sizes={"runs": a.worker_runs, "steps": 10, "clients": a.clients},
            wall_s=a.worker_runs * 10 / base,
            count=a.worker_runs * 10,
            unit="steps/s",
            loaded_steps_per_s=under,
            ratio=under / base,
            target_ratio=0.85,
            alone_all=[round(x) for x in alone],
            loaded_all=[round(x) for x in loaded],
            think_s=a.think,
            worker=a.worker,
            client_nice=a.client_nice,
            server_procs=a.server_procs,
            server_nice=a.server_nice,
        )

    async def main(self) -> None:
        a = self.args
        conn = await asyncpg.connect(self.dsn)
        self.meter = Meter(conn, self.server_pid)
        try:
            log("warm-up: closed load")
            await self.timed_load(min(2.0, a.seconds), 0.0)
            if "closed" in a.modes:
                log(f"closed: {a.clients} clients, no think time, {a.seconds:g} s")
                out = await self.timed_load(a.seconds, 0.0)
                self.report("closed", 0.0, out, out["elapsed"])
            if "paced" in a.modes:
                log(f"paced: {a.clients} clients, think {a.think:g} s ±50 %, {a.seconds:g} s")
                out = await self.timed_load(a.seconds, a.think)
                self.report("paced", a.think, out, out["elapsed"])
            if "worker" in a.modes:
                log(
                    f"worker: {a.worker_runs} runs x 10 steps, alone then under paced load,"
                    f" {a.repeats}x"
                )
                await self.worker_phase()
        finally:
            await conn.close()


# `durable ...` under cProfile timed by the thread's CPU clock: wall-clock profiles of a
# process on a shared machine charge time spent descheduled to whatever was running.
PROFILED = """
import cProfile, sys, time
from durable.cli import main
out, sys.argv = sys.argv[1], ["durable", *sys.argv[2:]]
profile = cProfile.Profile(time.thread_time)
profile.enable()
try:
    code = main()
finally:
    profile.disable()
    profile.dump_stats(out)
sys.exit(code)
"""


def start_server(
    dsn: str, port: int, args: argparse.Namespace, logfile: Any
) -> list[subprocess.Popen[bytes]]:
    """`durable serve http_load` (first), and with `--worker process` a `durable worker
    http_load` beside it; returns once the API answers."""
    env = dict(os.environ, PYTHONPATH=str(HERE))
    env.pop("DURABLE_API_TOKEN", None)
    prefix = [sys.executable, "-m", "durable"]
    if args.profile:
        prefix = [sys.executable, "-c", PROFILED, str(Path(args.profile).resolve())]
    cmd = [*prefix, "--dsn", dsn, "serve", "http_load", "--port", str(port)]
    if args.worker == "process":
        cmd.append("--no-worker")
    if args.server_procs > 1:
        cmd += ["--processes", str(args.server_procs)]
    nice = args.server_nice

    def lower() -> None:
        os.nice(nice)

    server = subprocess.Popen(
        cmd, env=env, cwd=HERE, stderr=logfile, preexec_fn=lower if nice else None
    )
    procs = [server]
    if args.worker == "process":
        worker = [sys.executable, "-m", "durable", "--dsn", dsn, "worker", "http_load"]
        procs.append(subprocess.Popen(worker, env=env, cwd=HERE, stderr=logfile))
    url = f"http://{HOST}:{port}/api/health"
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return procs
        if server.poll() is not None or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise SystemExit("durable serve did not come up")
        time.sleep(0.1)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        port, runs, clients, seconds, think, nice = json.loads(sys.argv[2])
        if nice:
            os.nice(nice)  # a load generator: it takes what the system under test leaves
        run_loop(client_main(port, runs, clients, seconds, think))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--modes", default="closed,paced,worker", help="comma-separated")
    parser.add_argument("--runs", type=int, default=None, help="finished runs seeded")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="per load mode")
    parser.add_argument("--think", type=float, default=None, help="paced mode's mean pause")
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument(
        "--client-nice", type=int, default=10, help="niceness of the load processes (0: off)"
    )
    parser.add_argument("--server-procs", type=int, default=1, help="durable serve --processes N")
    parser.add_argument(
        "--server-nice", type=int, default=0, help="start the API process(es) at this niceness"
    )
    parser.add_argument("--worker-runs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="worker rounds")
    parser.add_argument(
        "--worker",
        choices=["process", "serve"],
        default="process",
        help="where runs execute: a `durable worker` process beside `durable serve"
        " --no-worker` (default), or the worker inside `durable serve`",
    )
    parser.add_argument("--profile", default=None, help="cProfile the server into FILE")
    args = parser.parse_args()
    args.modes = {m.strip() for m in args.modes.split(",") if m.strip()}
    if not args.modes <= {"closed", "paced", "worker"}:
        raise SystemExit(f"unknown mode in {sorted(args.modes)}: closed, paced, worker")
    smoke = args.smoke
    args.runs = args.runs or (2_000 if smoke else 100_000)
    args.clients = args.clients or (20 if smoke else 200)
    args.seconds = args.seconds or (2.0 if smoke else 30.0)
    args.think = args.think if args.think is not None else (0.2 if smoke else 1.0)
    args.worker_runs = args.worker_runs or (100 if smoke else 1_000)
    args.repeats = args.repeats or (1 if smoke else 3)
    args.client_procs = max(1, min(args.client_procs, args.clients))

    dsn = recreate_database(args.dsn, DB_NAME)
    log(f"seeding {args.runs} finished runs")
    asyncio.run(seed(dsn, args.runs))
    port = free_port()
    with tempfile.TemporaryFile() as logfile:
        procs = start_server(dsn, port, args, logfile)
        ok = False
        bench = Bench(args, dsn, port, procs[0].pid)
        try:
            run_loop(bench.main())
            ok = bench.errors == 0
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)
            if not ok or any(p.returncode != 0 for p in procs):
                logfile.seek(0)
                sys.stderr.write(logfile.read().decode(errors="replace")[-4000:])
    if bench.errors:
        raise SystemExit(f"{bench.errors} requests failed")


if __name__ == "__main__":
    main()
