"""Shared helpers for the benchmark scripts.

Every script prints one JSON object per result on stdout (and nothing else on
stdout), so results from different systems can be concatenated and compared.
Keys: ``system``, ``scenario``, ``sizes`` (dict), ``wall_s``, ``throughput``,
``unit`` (what ``throughput`` counts per second), and ``p50_ms`` / ``p99_ms``
where a per-item latency is meaningful.  Extra keys are allowed.

Conventions shared by the scripts:

* ``--smoke`` runs every scenario at small sizes (seconds, for CI);
* ``--dsn`` is an admin DSN used only to (re)create the dedicated benchmark
  database; the benchmark itself runs against that database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def percentile(values: Sequence[float], p: float) -> float:
    """Return the ``p``-th percentile (0..100) with linear interpolation.

    Matches ``numpy.percentile(values, p)`` (the "linear" method).  Raises
    ``ValueError`` on an empty sequence.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {p}")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * (p / 100.0)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return float(ordered[lo])
    frac = rank - lo
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * frac)


def latency_fields(latencies_s: Iterable[float]) -> dict[str, float]:
    """``p50_ms`` / ``p99_ms`` fields from latencies given in seconds."""
    ms = [x * 1000.0 for x in latencies_s]
    if not ms:
        return {}
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
    }


def emit(
    system: str,
    scenario: str,
    *,
    sizes: dict[str, int],
    wall_s: float,
    count: float | None = None,
    unit: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Print one JSON result line and return it.

    If ``count`` and ``unit`` are given, ``throughput = count / wall_s`` and
    ``unit`` names what is counted (e.g. ``"steps/s"``).  Any extra keyword
    fields (``p50_ms``, ``p99_ms``, ``ms_per_step``, ``mode``...) are copied
    through; floats are rounded for readability.
    """
    record: dict[str, Any] = {
        "system": system,
        "scenario": scenario,
        "sizes": dict(sizes),
        "wall_s": round(wall_s, 4),
    }
    if count is not None:
        if unit is None:
            raise ValueError("emit(): 'unit' is required with 'count'")
        record["throughput"] = round(count / wall_s, 2) if wall_s > 0 else None
        record["unit"] = unit
    for key, value in fields.items():
        record[key] = round(value, 3) if isinstance(value, float) else value
    print(json.dumps(record), flush=True)
    return record


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--smoke`` and ``--dsn`` to ``parser``."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="small sizes, for a quick check (CI)",
    )
    parser.add_argument(
        "--dsn",
        default=DEFAULT_DSN,
        help=f"admin DSN used to (re)create the benchmark database (default: {DEFAULT_DSN})",
    )


def parse_scenarios(spec: str, valid: Iterable[int]) -> list[int]:
    """Parse ``"1,2,4"`` into ``[1, 2, 4]``, rejecting unknown numbers."""
    allowed = set(valid)
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        n = int(part)
        if n not in allowed:
            raise SystemExit(f"unknown scenario {n}; valid: {sorted(allowed)}")
        if n not in out:
            out.append(n)
    return out


def dsn_with_database(dsn: str, dbname: str) -> str:
    """Return ``dsn`` with its database path replaced by ``dbname``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


async def recreate_database_async(admin_dsn: str, dbname: str) -> str:
    """Drop (if present) and create ``dbname``; return a DSN pointing at it.

    Any session still connected to the old database is terminated first.
    """
    if not _DB_NAME_RE.match(dbname):
        raise ValueError(f"unsafe database name: {dbname!r}")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            dbname,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()
    return dsn_with_database(admin_dsn, dbname)


def recreate_database(admin_dsn: str, dbname: str) -> str:
    """Synchronous wrapper of :func:`recreate_database_async` (no loop running)."""
    return asyncio.run(recreate_database_async(admin_dsn, dbname))


def log(msg: str) -> None:
    """Progress messages go to stderr so stdout stays pure JSON lines."""
    print(msg, file=sys.stderr, flush=True)


# -- CPU time per step ---------------------------------------------------------------------


def _schedstat_ns(path: str) -> int:
    """Nanoseconds a task spent on a CPU (first field of /proc/.../schedstat), 0 if gone."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def process_cpu_ns(pid: int | str = "self") -> int:
    """On-CPU time of every thread of a process, from /proc/<pid>/task/*/schedstat."""
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return 0
    return sum(_schedstat_ns(f"{base}/{tid}/schedstat") for tid in tids)


class CpuMeter:
    """CPU time spent by this (benchmark) process and by PostgreSQL during a timed part.

    Read from /proc schedstat, so it counts time actually on a CPU: far less sensitive
    than wall-clock throughput to other load on the machine. `pg` sums the backends
    connected to the benchmark database (the runtime's pool, its commit and LISTEN
    connections); `pg_bg` the server's WAL writer, checkpointer and background writer
    (server-wide: other databases' load lands there too). Needs the server on this host.
    """

    BG = ("walwriter", "checkpointer", "background writer")

    def __init__(self, conn: Any) -> None:
        self._conn = conn  # anything with asyncpg's `fetch` (a pool or a connection)
        self._start: dict[str, int] = {}
        self._pg0: dict[int, int] = {}
        self._bg0: dict[int, int] = {}

    async def _pids(self) -> tuple[list[int], list[int]]:
        rows = await self._conn.fetch(
            "SELECT pid, backend_type, datname = current_database() AS ours FROM pg_stat_activity"
        )
        ours = [r["pid"] for r in rows if r["ours"]]
        bg = [r["pid"] for r in rows if r["backend_type"] in self.BG]
        return ours, bg

    async def start(self) -> None:
        ours, bg = await self._pids()
        self._pg0 = {pid: process_cpu_ns(pid) for pid in ours}
        self._bg0 = {pid: process_cpu_ns(pid) for pid in bg}
        self._py0 = process_cpu_ns()

    async def stop(self, steps: int) -> dict[str, float]:
        """µs of CPU per step: python, pg (backends), pg_bg, and their total."""
        py = process_cpu_ns() - self._py0
        ours, bg = await self._pids()
        pg = sum(process_cpu_ns(pid) - self._pg0.get(pid, 0) for pid in ours)
        pg_bg = sum(process_cpu_ns(pid) - self._bg0.get(pid, 0) for pid in bg)
        per = 1000.0 * max(steps, 1)
        return {
            "cpu_py_us_per_step": py / per,
            "cpu_pg_us_per_step": pg / per,
            "cpu_pg_bg_us_per_step": pg_bg / per,
            "cpu_us_per_step": (py + pg + pg_bg) / per,
        }
