"""Shared fixtures of the HTTP tests: runtimes on the per-test schema, and a real
`durable serve` subprocess (on its own port, with a token) for the out-of-process tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from durable import Runtime, WorkflowDef

MakeRuntime = Callable[..., Runtime]
HERE = Path(__file__).parent
TOKEN = "serve-test-token"


@pytest.fixture
def make_rt(dsn: str, schema: str) -> MakeRuntime:
    def make(*workflows: WorkflowDef, **options: Any) -> Runtime:
        options.setdefault("poll_interval", "100ms")
        options.setdefault("lease", "5s")
        options.setdefault("shutdown_grace", "2s")
        return Runtime(dsn, schema=schema, workflows=list(workflows), **options)

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def durable_cmd(dsn: str, schema: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "durable", "--dsn", dsn, "--schema", schema, *args]


def serve_env(token: str | None = TOKEN) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.pop("DURABLE_API_TOKEN", None)
    if token is not None:
        env["DURABLE_API_TOKEN"] = token
    return env


@dataclass
class Server:
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kw)


@pytest.fixture
def server(dsn: str, schema: str, tmp_path: Path) -> Iterator[Server]:
    """`durable serve apps` with a worker, until the test ends (then SIGTERM: exit 0)."""
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        durable_cmd(dsn, schema, "serve", "apps", "--port", str(port)),
        env=serve_env(),
        cwd=HERE,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            r = httpx.get(f"{url}/api/health", headers={"Authorization": f"Bearer {TOKEN}"})
            if r.status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((tmp_path / "serve.log").read_text())
        time.sleep(0.1)
    try:
        yield Server(url, TOKEN, proc, tmp_path / "serve.log")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
        assert code == 0, (tmp_path / "serve.log").read_text()
