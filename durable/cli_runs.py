"""`durable runs retry` and what `durable runs show` adds about failures and waits.

Kept apart from cli.py (near its size limit). `runs show` prints, besides the run, the
stored traceback of a failed run, the lease holder of a running one, and whether any
live worker serves the workflow and version of an unfinished one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from durable.diagnostics import run_situation
from durable.runtime import RunInfo, Runtime

ClientCommand = Callable[[Runtime, argparse.Namespace], Awaitable[None]]

READ_ONLY = True
"""Passed to the CLI's client wrapper: the command reads and never migrates."""


def add_runs_commands(
    runs_sub: Any, client: Callable[..., Callable[[argparse.Namespace], int]]
) -> None:
    """Register `runs retry` under `durable runs`."""
    p = runs_sub.add_parser(
        "retry",
        help="resume a failed run (or one parked by NonDeterminismError) on the current code",
    )
    p.add_argument("run_id", metavar="RUN")
    p.set_defaults(handler=client(_runs_retry))


async def _runs_retry(rt: Runtime, args: argparse.Namespace) -> None:
    handle = await rt.retry(args.run_id)
    rec = await rt.store.get_run(handle.run_id)
    status = "?" if rec is None else rec.status
    sys.stdout.write(
        f"run {handle.run_id} retried: now {status}; a worker serving its workflow resumes it\n"
    )


async def situation_fields(rt: Runtime, info: RunInfo) -> list[tuple[str, str]]:
    """`runs show` lines for an unfinished run: lease holder, waits, live workers."""
    if info.status not in ("pending", "running", "suspended"):
        return []
    lines = await run_situation(rt, info.run_id)
    # "waiting on" is printed by runs show itself; keep the lease and worker lines.
    lines = [line for line in lines if not line.startswith("waiting on")]
    return [("worker" if i == 0 else "", line) for i, line in enumerate(lines)]


def traceback_lines(info: RunInfo) -> list[str]:
    """The stored traceback of a failed run, indented, under a heading (or nothing)."""
    if not info.traceback:
        return []
    return ["traceback:", *("  " + line for line in info.traceback.splitlines())]
