"""The event loop a durable process runs on: uvloop when installed, else asyncio's own.

uvloop (the optional extra `durable-pg[uvloop]`) makes each loop round trip several
times cheaper, which shows in the per-step cost (see docs/benchmarks.md). Used by the
`durable worker` command; an application that runs its own loop can call `run` too.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "DURABLE_LOOP"
"""`asyncio` forces asyncio's default loop even when uvloop is installed; `uvloop`
requires it (an error if missing); unset or `auto`: uvloop when installed."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when it is installed and wanted, else None (the default)."""
    choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "asyncio", "uvloop"):
        raise ValueError(f"invalid {ENV}={choice!r}: expected auto, asyncio or uvloop")
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError(
                f"{ENV}=uvloop but uvloop is not installed: pip install 'durable-pg[uvloop]'"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
