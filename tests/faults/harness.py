"""Helpers for the fault-injection suite: worker processes, waits, invariants, figures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[2]


def reachable_tmpdir(prefix: str) -> Path:
    """A temp dir the unprivileged PostgreSQL user can traverse when we run as root."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def report(test: str, **figures: Any) -> None:
    """Print the figures a test measured; also append them as JSON to
    ``$DURABLE_FAULTS_REPORT`` when set (docs/reliability.md quotes them)."""
    line = json.dumps({"test": test, **figures}, default=str)
    print(f"FIGURES {line}")
    path = os.environ.get("DURABLE_FAULTS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.05, what: str = ""
) -> float:
    """Poll `predicate` until true; return the seconds it took. TimeoutError names `what`."""
    start = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


def rss_of(pid: int) -> int:
    """Resident set size of a process in bytes, from /proc/<pid>/statm (no psutil)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Worker:
    """One `tests.faults.worker_app` subprocess; its stderr goes to a log file."""

    def __init__(self, dsn: str, schema: str, log_dir: Path, *args: str) -> None:
        self.dsn = dsn
        self.schema = schema
        self.args = args
        self.log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.worker_app", dsn, schema, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.pid = self.proc.pid
        self.ready = False

    async def _line(self, prefix: str, timeout: float) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await asyncio.to_thread(self.proc.stdout.readline)
                if not line:
                    raise RuntimeError(
                        f"worker {self.pid} exited ({self.proc.poll()}): {self.log_text()[-2000:]}"
                    )
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()

    async def wait_ready(self, timeout: float = 30.0) -> Worker:
        await self._line("ready", timeout)
        self.ready = True
        return self

    async def stats(self, timeout: float = 10.0) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGUSR1)
        data: dict[str, Any] = json.loads(await self._line("stats ", timeout))
        return data

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return -9

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text()


@contextlib.contextmanager
def workers_cleanup() -> Iterator[list[Worker]]:
    """Collects workers; whatever happens, none outlives the test."""
    started: list[Worker] = []
    try:
        yield started
    finally:
        for w in started:
            with contextlib.suppress(Exception):
                w.close()


async def create_side_effects(db: asyncpg.Connection) -> None:
    await db.execute(
        "CREATE TABLE side_effects (id bigserial PRIMARY KEY, run_id text NOT NULL,"
        " step int NOT NULL, pid int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )


async def check_histories(db: asyncpg.Connection, run_ids: list[str] | None = None) -> None:
    """Invariants every fault test ends with (research catalogue I2 and I4).

    - I2: at most one step_completed per (run, step name), and no step_completed after
      a final step_failed;
    - I4: per run, seqs are exactly 1..n; at most one terminal event, and it is last.

    Dense seqs are what these tests' runs produce; the engine only promises increasing,
    unique ones (a cancel racing a gather's writes can skip one: test_seq_gaps.py).
    """
    where = "" if run_ids is None else "WHERE run_id = ANY($1::text[])"
    args: list[Any] = [] if run_ids is None else [run_ids]
    dup = await db.fetch(
        "SELECT run_id, name, count(*) AS n FROM events "
        f"{where + ' AND' if where else 'WHERE'} kind = 'step_completed' "
        "GROUP BY run_id, name HAVING count(*) > 1 LIMIT 5",
        *args,
    )
    assert not dup, f"step recorded more than once: {[dict(r) for r in dup]}"
    gaps = await db.fetch(
        "SELECT run_id, min(seq) AS lo, max(seq) AS hi, count(*) AS n FROM events "
        f"{where} GROUP BY run_id HAVING min(seq) <> 1 OR max(seq) <> count(*) LIMIT 5",
        *args,
    )
    assert not gaps, f"non-contiguous histories: {[dict(r) for r in gaps]}"
    term = await db.fetch(
        "SELECT run_id, count(*) AS n, max(seq) AS tseq,"
        " (SELECT max(seq) FROM events e2 WHERE e2.run_id = e.run_id) AS last "
        f"FROM events e {where + ' AND' if where else 'WHERE'} "
        "kind IN ('run_completed', 'run_failed', 'run_cancelled', 'run_continued') "
        # A cancelled run's cleanup is recorded after run_cancelled (docs/upgrades.md).
        "GROUP BY run_id HAVING count(*) > 1 OR (max(seq) <> "
        "(SELECT max(seq) FROM events e2 WHERE e2.run_id = e.run_id)"
        " AND bool_and(kind <> 'run_cancelled')) LIMIT 5",
        *args,
    )
    assert not term, f"terminal event repeated or not last: {[dict(r) for r in term]}"


class Captured:
    """ERROR+ log records and asyncio loop exception-handler calls seen during a test."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.loop_errors: list[dict[str, Any]] = []

    def by_level(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= level]

    def text(self, level: int = logging.DEBUG) -> str:
        out = []
        for r in self.records:
            if r.levelno < level:
                continue
            out.append(f"{r.levelname} {r.name}: {r.getMessage()}")
            if r.exc_info:
                out.append(logging.Formatter().formatException(r.exc_info))
        out.extend(str(e) for e in self.loop_errors)
        return "\n".join(out)


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


@contextlib.contextmanager
def capture_problems(level: int = logging.DEBUG) -> Iterator[Captured]:
    """Capture every log record (root logger, `level` and up) and every exception the
    running loop's exception handler receives (e.g. 'Task exception was never retrieved')."""
    cap = Captured()
    handler = _ListHandler(cap.records)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    loop = asyncio.get_running_loop()
    old_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: cap.loop_errors.append(ctx))
    try:
        yield cap
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        loop.set_exception_handler(old_handler)
