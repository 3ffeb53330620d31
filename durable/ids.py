"""Run ids: opaque strings that sort by creation time.

A time-ordered id puts each new run (and its events, keyed by run id) at the right edge
of the primary-key B-trees, so inserts touch a few hot pages instead of random ones all
over an index that no longer fits in memory once millions of runs are stored.
"""

from __future__ import annotations

import secrets
import time


def new_run_id() -> str:
    """32 hex characters: 48 bits of milliseconds since the epoch, then 80 random bits."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.randbits(80):020x}"
