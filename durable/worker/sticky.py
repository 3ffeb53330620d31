"""The sticky cache: suspended runs' live coroutines, bounded by count and by bytes.

A suspended run whose coroutine is kept here resumes without replay when this worker
claims it again. The cache only saves work (replay is the correctness path), so an
entry is dropped whenever keeping it could cost more than it saves: the least recently
suspended first when the cache is over its bounds, and at once when a notice says the
run ended or was cancelled (on this worker or any other), since nothing will resume it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable.worker.execution import RunExecution


class StickyCache:
    """Run id -> its suspended `RunExecution`, least recently suspended first.

    Bounded by `max_runs` entries and by `max_bytes`, the sum of the entries' estimated
    sizes (`RunExecution.weight`: a fixed overhead plus the run's input and the history
    payloads its coroutine has seen, which is what its locals mostly hold). An entry
    over `max_bytes` on its own is not kept. Dropping an entry evicts it: its coroutine
    is closed, and any ctx call its `finally` blocks make raises instead of running or
    writing anything (the execution is dead).
    """

    def __init__(self, max_runs: int, max_bytes: int) -> None:
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[RunExecution, int]] = OrderedDict()
        self.bytes = 0
        self.evicted = 0  # entries dropped for the bounds (not taken back, not ended)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._entries

    def put(self, run_id: str, execution: RunExecution) -> None:
        """Keep a suspended run's coroutine, then evict the oldest entries past the bounds."""
        if self.max_runs <= 0:
            execution.evict()
            return
        self.drop(run_id)  # never two entries (or two weights) for one run
        weight = execution.weight
        self._entries[run_id] = (execution, weight)
        self.bytes += weight
        while self._entries and (len(self._entries) > self.max_runs or self.bytes > self.max_bytes):
            _, (old, old_weight) = self._entries.popitem(last=False)
            self.bytes -= old_weight
            self.evicted += 1
            old.evict()

    def take(self, run_id: str) -> RunExecution | None:
        """Remove and return a run's entry to resume it (not evicted)."""
        entry = self._entries.pop(run_id, None)
        if entry is None:
            return None
        self.bytes -= entry[1]
        return entry[0]

    def drop(self, run_id: str) -> bool:
        """Evict a run's entry (it ended, was cancelled, or will be replayed)."""
        execution = self.take(run_id)
        if execution is None:
            return False
        execution.evict()
        return True

    def clear(self) -> list[asyncio.Task[Any]]:
        """Evict every entry; return their coroutines' tasks to let them unwind."""
        tasks = [e.task for e, _ in self._entries.values() if e.task is not None]
        entries = list(self._entries.values())
        self._entries.clear()
        self.bytes = 0
        for execution, _ in entries:
            execution.evict()
        return tasks
