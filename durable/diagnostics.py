"""Seeing and fixing failures: tracebacks, retrying failed runs, honest wait messages.

Runtime helpers kept out of runtime.py (which is at its size limit): the Runtime's
`retry` and its `result()` timeout message call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def traceback_of(history: Sequence[Any]) -> str | None:
    """The traceback recorded with the run's run_failed event (None without one).

    `history` holds decoded `durable.runtime.Event`s; a run_failed payload is a
    RunFailure (decoded as a dict) when the workflow code raised, else the error text.
    """
    for event in reversed(history):
        if event.kind == "run_failed":
            payload = event.payload
            if isinstance(payload, dict):
                tb = payload.get("traceback")
                return tb if isinstance(tb, str) else None
            return None
    return None
