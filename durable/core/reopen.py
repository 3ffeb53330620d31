"""Where a failed run resumes when it is retried: which recorded events are dropped.

Pure: the run's error text and events in, the seqs to delete out. The store deletes
them under the run's lock (`Store.reopen_run`); the worker then replays what is left
on the currently registered code and continues live from there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from durable.core.events import RUN_POS, Event, EventKind
from durable.core.history import decode_failure

# The two NonDeterminismError texts RunState writes, each naming the diverging position.
_DIVERGED = re.compile(r"at position (\d+) \(event seq|without reaching history position (\d+) ")


def diverged_at(error: str | None) -> int | None:
    """The position a run parked by NonDeterminismError diverged at (None otherwise)."""
    if not error or not error.startswith("NonDeterminismError"):
        return None
    match = _DIVERGED.search(error)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def retry_cut(events: Sequence[Event], error: str | None) -> list[int]:
    """The seqs to delete so that a retry resumes the run where it failed.

    - Parked by non-determinism: every event at the diverging position or later (the
      new code runs live from there; history before it is kept and replayed).
    - Failed: the run_failed event, and, when the last thing recorded before it is a
      step's final failure, that step's failed attempts too -- the step then runs again
      from its first attempt, with its whole retry budget, on the new code. When the
      workflow code itself raised (no step failed last), only run_failed is dropped:
      replay reaches the end of history and the code continues live. A child's
      failure recorded last is dropped too, so the parent looks at the child again
      (retry the child first: the parent then waits for its new outcome).
    """
    pos = diverged_at(error)
    if pos is not None:
        return [e.seq for e in events if e.pos >= pos or e.pos == RUN_POS]
    cut = [e.seq for e in events if e.pos == RUN_POS]
    body = [e for e in events if e.pos != RUN_POS]
    if body:
        last = body[-1]
        if last.kind == EventKind.STEP_FAILED and decode_failure(last).final:
            at = last.pos
            cut += [e.seq for e in body if e.pos == at and e.kind == EventKind.STEP_FAILED]
        elif last.kind == EventKind.CHILD_FAILED:
            cut.append(last.seq)
    return sorted(cut)


__all__ = ["diverged_at", "retry_cut"]
