"""`durable serve` as a real subprocess: the API over TCP, live events, auth, shutdown,
and a property-based schemathesis run against its OpenAPI document."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpfix
import httpx
import pytest
from httpfix import HERE, Server, durable_cmd, serve_env

server = httpfix.server


def wait_for(c: httpx.Client, run_id: str, status: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while True:
        body: dict[str, object] = c.get(f"/api/workflows/runs/{run_id}").json()
        if body["status"] == status:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_serve_answers_over_tcp_with_live_events(server: Server) -> None:
    with server.client() as c:
        assert httpx.get(f"{server.url}/api/workflows/runs").status_code == 401
        page = httpx.get(f"{server.url}/")
        assert page.status_code == 200 and 'src="static/app.js"' in page.text
        with c.stream("GET", "/api/workflows/live") as live:
            assert live.headers["content-type"].startswith("text/event-stream")
            lines = live.iter_lines()
            assert next(lines).startswith("retry:")
            r = c.post("/api/workflows/runs", json={"workflow": "approval", "input": 1})
            assert r.status_code == 201
            run_id = r.json()["run_id"]
            seen: list[str] = []
            while not any(run_id in line and "suspended" in line for line in seen):
                seen.append(next(lines))
        r = c.post(f"/api/workflows/runs/{run_id}/signals/approve", json={"payload": "ok"})
        assert r.status_code == 202
        assert wait_for(c, run_id, "completed")["output"] == {"input": 1, "answer": "ok"}
        listed = c.get("/api/workflows/runs", params={"workflow": "approval"}).json()
        assert [run["run_id"] for run in listed["runs"]] == [run_id]
        assert c.get("/api/workflows/schedules").json()[0]["name"] == "nightly"


def test_serve_every_endpoint_and_error_code(server: Server) -> None:
    with server.client() as c:
        base = "/api/workflows"
        r = c.post(f"{base}/runs", json={"workflow": "approval", "tags": {"k": "v"}})
        assert r.status_code == 201
        run_id = r.json()["run_id"]
        assert (
            c.post(f"{base}/runs", json={"workflow": "approval", "run_id": run_id}).status_code
            == 200
        )
        wait_for(c, run_id, "suspended")
        assert c.get(f"{base}/runs", params={"tag": "k:v"}).json()["runs"][0]["run_id"] == run_id
        assert c.patch(f"{base}/runs/{run_id}", json={"tags": {"x": "y"}}).json()["tags"] == {
            "k": "v",
            "x": "y",
        }
        assert c.get(f"{base}/runs/{run_id}/children").json() == []
        assert c.get(f"{base}/runs/{run_id}/parent").json() is None
        assert c.post(f"{base}/events", json={"run_id": run_id, "type": "t"}).status_code == 201
        assert [e["type"] for e in c.get(f"{base}/runs/{run_id}/events").json()] == ["asked", "t"]
        token = c.post(f"{base}/hooks", json={"run_id": run_id, "name": "approve"}).json()["token"]
        assert (
            httpx.post(f"{server.url}{base}/hooks/{token}", json={"payload": 1}).status_code == 200
        )
        wait_for(c, run_id, "completed")
        other = c.post(f"{base}/runs", json={"workflow": "approval"}).json()["run_id"]
        assert c.post(f"{base}/runs/{other}/signals/nothing").status_code == 202
        assert c.delete(f"{base}/runs/{other}").json()["status"] == "cancelled"
        assert c.post(f"{base}/schedules/nightly/pause").json()["paused"] is True
        assert c.post(f"{base}/schedules/nightly/resume").json()["paused"] is False
        assert c.get("/api/openapi.json").json()["openapi"] == "3.1.0"
        assert c.get("/api/health").json()["status"] == "ok"
        # Each error code once, over the wire.
        errors = [
            (c.post(f"{base}/runs", content=b"{"), 400),
            (httpx.get(f"{server.url}{base}/runs"), 401),
            (c.get(f"{base}/runs/nope"), 404),
            (c.delete(f"{base}/runs/{run_id}"), 409),
            (c.post(f"{base}/runs", json={"workflow": "approval", "input": "x" * (17 << 20)}), 413),
            (c.post(f"{base}/runs", json={"workflow": "order", "input": {"order_id": "x"}}), 422),
        ]
        for r, status in errors:
            assert r.status_code == status, r.text
            assert set(r.json()) == {"error", "message"}


def test_serve_runs_on_httptools_and_uvloop_when_installed(server: Server) -> None:
    """uvicorn's pure-Python parser (h11) and asyncio's loop cost several times more CPU
    per request: `serve` picks httptools and uvloop when installed (the `server` extra)
    and writes no access-log line per request."""
    with server.client() as c:
        for _ in range(3):
            assert c.get("/api/health").status_code == 200
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    text = server.log.read_text()
    assert f"http={http}, loop={loop}" in text, text
    assert "/api/health" not in text


def test_serve_no_worker_answers_but_runs_nothing(dsn: str, schema: str, tmp_path: Path) -> None:
    """`--no-worker`: the API and dashboard alone (workers run as `durable worker`, in
    their own processes, so neither slows the other's event loop)."""
    port = httpfix.free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            durable_cmd(dsn, schema, "serve", "apps", "--port", str(port), "--no-worker"),
            env=serve_env(),
            cwd=HERE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        c = Server(f"http://127.0.0.1:{port}", httpfix.TOKEN, proc, log).client()
        deadline = time.monotonic() + 30
        while True:
            try:
                if c.get("/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        r = c.post(
            "/api/workflows/runs", json={"workflow": "order", "input": {"order_id": 1, "amount": 2}}
        )
        assert r.status_code == 201
        time.sleep(1.0)  # a worker would have finished it by now
        assert c.get(f"/api/workflows/runs/{r.json()['run_id']}").json()["status"] == "pending"
        assert "without a worker" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()


def _established(pid: int, port: int) -> int:
    """TCP connections to `port` that process `pid` holds open (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                local_port = int(cols[1].rsplit(":", 1)[1], 16)
                if local_port == port and cols[3] == "01" and cols[9] in inodes:
                    count += 1
    return count


def test_serve_processes_answer_on_one_port(dsn: str, schema: str, tmp_path: Path) -> None:
    """`--processes 2`: two serving processes (each with its worker) share the port; new
    connections go to both; SIGTERM stops both and the command exits 0."""
    port = httpfix.free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            durable_cmd(dsn, schema, "serve", "apps", "--port", str(port), "--processes", "2"),
            env=serve_env(),
            cwd=HERE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", httpfix.TOKEN, proc, log)
    clients: list[httpx.Client] = []
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("serving http://") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            pids = [int(pid) for pid in f.read().split()]
        # Spawned interpreters (not multiprocessing's resource tracker).
        children = [
            pid for pid in pids if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(children) == 2
        # 32 kept-alive connections: the kernel spreads them over both processes' sockets.
        for _ in range(32):
            clients.append(server.client())
            assert clients[-1].get("/api/health").status_code == 200
        assert all(_established(pid, port) > 0 for pid in children), [
            _established(pid, port) for pid in children
        ]
        c = clients[0]
        r = c.post("/api/workflows/runs", json={"workflow": "approval", "input": 2})
        assert r.status_code == 201
        run_id = r.json()["run_id"]
        assert wait_for(c, run_id, "suspended")["run_id"] == run_id  # a worker ran it
        for client in clients[1:]:
            assert client.get(f"/api/workflows/runs/{run_id}").json()["status"] == "suspended"
    finally:
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    assert not any(os.path.exists(f"/proc/{pid}") for pid in children)
    assert "server stopped (2 processes)" in log.read_text()


def test_serve_processes_stop_all_when_one_fails(dsn: str, schema: str) -> None:
    """A serving process that cannot start (no such database) says why in one line,
    and the command stops the others and exits 1 rather than serving with fewer."""
    bad = dsn.rsplit("/", 1)[0] + "/no_such_database_for_serve"
    port = httpfix.free_port()
    cmd = durable_cmd(bad, schema, "serve", "apps", "--port", str(port), "--processes", "2")
    proc = subprocess.run(
        cmd, env=serve_env(), cwd=HERE, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    assert "serving process" in proc.stderr and "no_such_database_for_serve" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_reuse_port_socket_connections_get_tcp_nodelay() -> None:
    """Without TCP_NODELAY on accepted connections, each answer written in two parts
    (head, then body) waited for the client's delayed ACK: ~40 ms per request."""
    import asyncio

    from durable.http.serve import reuse_port_socket

    async def main() -> int:
        sock = reuse_port_socket("127.0.0.1", 0)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            port = sock.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            nodelay = await accepted
            writer.close()
        return nodelay

    assert asyncio.run(main()) != 0


def test_serve_refuses_public_host_without_token(dsn: str, schema: str) -> None:
    proc = subprocess.run(
        durable_cmd(dsn, schema, "serve", "apps", "--host", "0.0.0.0"),
        env=serve_env(token=None),
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "non-loopback" in proc.stderr and "DURABLE_API_TOKEN" in proc.stderr


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_or_schema_violation(
    server: Server, tmp_path: Path
) -> None:
    """Property-based run of every operation (examples, coverage, fuzzing, stateful):
    any 5xx, undocumented status, schema-violating answer, accepted invalid request or
    rejected valid one fails the test."""
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a dev dependency"
    proc = subprocess.run(
        [
            st,
            "run",
            f"{server.url}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {server.token}",
            "--exclude-path",
            "/api/workflows/live",  # an endless stream: covered by the test above
            "--max-examples",
            "40",
            "--max-failures",
            "20",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout
