"""The embedded PostgreSQL helper really starts, serves, is reused and stops.

These tests start their own throwaway servers (independent of the session's
``pg_dsn``) and are skipped only on a machine with no PostgreSQL binaries at all.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from durable import embedded


def _binaries_available() -> bool:
    try:
        embedded.find_bindir()
    except embedded.EmbeddedPostgresError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _binaries_available(), reason="no PostgreSQL server binaries on this machine"
)

is_root = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir path the server user can reach even when the tests run as root."""
    base = Path(tempfile.mkdtemp(prefix="durable-embedded-test-"))
    base.chmod(0o755)
    path = base / "pg"
    yield path
    embedded.stop_server(path)
    shutil.rmtree(embedded.resolve_data_dir(path), ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)


async def _select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        value: int = await conn.fetchval("select 1")
        return value
    finally:
        await conn.close()


async def test_start_connect_reuse_stop(data_dir: Path) -> None:
    assert embedded.server_status(data_dir) is None

    dsn = await asyncio.to_thread(embedded.ensure_server, data_dir)
    assert dsn.startswith("postgresql://postgres@127.0.0.1:")
    assert await _select_one(dsn) == 1
    assert (data_dir / "PG_VERSION").is_file()
    assert embedded.resolve_data_dir(data_dir) == data_dir

    # A second call finds the running server instead of starting another.
    assert await asyncio.to_thread(embedded.ensure_server, data_dir) == dsn
    assert embedded.server_status(data_dir) == dsn

    assert await asyncio.to_thread(embedded.stop_server, data_dir) is True
    assert embedded.server_status(data_dir) is None
    assert await asyncio.to_thread(embedded.stop_server, data_dir) is False

    # Restarting keeps the data directory and the port, hence the DSN.
    assert await asyncio.to_thread(embedded.ensure_server, data_dir) == dsn
    assert await _select_one(dsn) == 1


@pytest.mark.skipif(not is_root, reason="only root needs an unprivileged server user")
async def test_root_unreachable_dir_falls_back(tmp_path: Path) -> None:
    # pytest's tmp_path lives under a 0700 root-owned directory: unreachable.
    requested = tmp_path / "pg"
    actual = embedded.resolve_data_dir(requested)
    assert actual != requested
    try:
        dsn = await asyncio.to_thread(embedded.ensure_server, requested)
        assert await _select_one(dsn) == 1
        assert (actual / "PG_VERSION").stat().st_uid != 0
        assert embedded.server_status(requested) == dsn
    finally:
        embedded.stop_server(requested)
        shutil.rmtree(actual, ignore_errors=True)
        (actual.parent / f".{actual.name}.lock").unlink(missing_ok=True)


def test_cli_start_status_stop(data_dir: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "durable.embedded", *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert cli("status").returncode == 3
    started = cli("start")
    assert started.returncode == 0, started.stderr
    dsn = started.stdout.strip()
    assert dsn.startswith("postgresql://")
    # One line says where it runs, where the data lives, that it stays, how to stop it.
    (line,) = [ln for ln in started.stderr.splitlines() if "started PostgreSQL" in ln]
    assert dsn in line
    assert f"data in {data_dir}" in line
    assert "keeps running after this process exits" in line
    assert f"python -m durable.embedded stop --data-dir {data_dir}" in line
    status = cli("status")
    assert (status.returncode, status.stdout.strip()) == (0, dsn)
    assert cli("stop").returncode == 0
    assert cli("status").returncode == 3


def test_default_data_dir_follows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_DATA_DIR", "/srv/d")
    assert embedded.default_data_dir() == Path("/srv/d")
    monkeypatch.delenv("DURABLE_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    assert embedded.default_data_dir() == Path("/xdg/durable/pg")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", "/home/someone")
    assert embedded.default_data_dir() == Path("/home/someone/.local/share/durable/pg")


async def test_runtime_without_dsn_uses_embedded_server(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README demo path: no DSN anywhere, so Runtime() starts its own PostgreSQL."""
    from durable import Context, Runtime, workflow

    @workflow
    async def hello(ctx: Context, name: str) -> str:
        greeting: str = await ctx.step("greet", lambda: f"hello {name}")
        return greeting

    monkeypatch.delenv("DURABLE_DSN", raising=False)
    monkeypatch.setenv("DURABLE_DATA_DIR", str(data_dir))
    async with Runtime(workflows=[hello], poll_interval="100ms") as rt:
        handle = await rt.trigger(hello, "embedded")
        assert await handle.result(timeout=30) == "hello embedded"
    assert embedded.server_status(data_dir) is not None


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def _env_without_dsn(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DURABLE_DSN", "DURABLE_SCHEMA")}
    env.update(extra)
    return env


_RUNTIME_WITHOUT_DSN = """
import asyncio
from durable import Runtime

async def main():
    async with Runtime(worker=False) as rt:
        pass

asyncio.run(main())
"""


def test_runtime_announces_the_server_it_starts_on_stderr(data_dir: Path) -> None:
    """A program that configured no logging still learns it left a server running."""
    env = _env_without_dsn(DURABLE_DATA_DIR=str(data_dir))
    first = _python(_RUNTIME_WITHOUT_DSN, env)
    assert first.returncode == 0, first.stderr
    dsn = embedded.server_status(data_dir)
    assert dsn is not None  # still running after the process exited
    lines = first.stderr.strip().splitlines()
    assert lines == [
        f"durable.embedded: started PostgreSQL at {dsn} with its data in {data_dir}; it keeps "
        "running after this process exits (stop it with `python -m durable.embedded stop`)"
    ]
    # Reusing it is not news: nothing on stderr (INFO on the logger only).
    again = _python(_RUNTIME_WITHOUT_DSN, env)
    assert (again.returncode, again.stderr) == (0, "")


def test_cli_without_database_points_to_the_embedded_server(data_dir: Path) -> None:
    def durable_cli() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "durable", "runs", "list"],
            env=_env_without_dsn(DURABLE_DATA_DIR=str(data_dir)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    idle = durable_cli()
    assert idle.returncode == 2
    assert "export DURABLE_DSN=$(python -m durable.embedded start)" in idle.stderr

    dsn = embedded.ensure_server(data_dir)
    running = durable_cli()
    assert running.returncode == 2
    assert f"export DURABLE_DSN={dsn}" in running.stderr


ROOT_DEFAULT_DATA = "/var/tmp/durable-pg-0/pg-3875bcee587b"


def test_docs_say_where_root_keeps_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """README and operations.md name the real directory of root's default cluster."""
    requested = Path("/root/.local/share/durable/pg")
    assert embedded._fallback_dir(requested).name == Path(ROOT_DEFAULT_DATA).name
    repo = Path(__file__).resolve().parent.parent
    for doc in (repo / "README.md", repo / "docs" / "operations.md"):
        assert ROOT_DEFAULT_DATA in doc.read_text(), doc
    if is_root and not embedded._user_can_reach(requested, embedded._pick_user(requested)):
        monkeypatch.delenv("DURABLE_DATA_DIR", raising=False)
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
        monkeypatch.setenv("HOME", "/root")
        assert embedded.resolve_data_dir() == Path(ROOT_DEFAULT_DATA)
