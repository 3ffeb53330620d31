"""Persistence: one protocol (`Store`, in base.py) with a PostgreSQL and an in-memory backend.

Backends are loaded by name (`store_for`), so code above the store -- the runtime, the
scheduler, the executor -- never imports a database driver. To plug in your own, pass
any object implementing `Store` as `Runtime(store=obj)`; `durable.testing.conformance`
checks it. See docs/stores.md.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from durable.store.base import (
    Batch,
    BatchResult,
    ChildOutcome,
    ClaimedRun,
    Created,
    EventRow,
    Extend,
    Finish,
    KeyStats,
    Listener,
    NewRun,
    NoticeCallback,
    QueueSpec,
    QueueStats,
    RunRecord,
    ScheduleInfo,
    ScheduleRow,
    Store,
    Suspend,
)

MEMORY_URL = "memory://"

# url scheme -> "module:class"; imported on first use (keeps asyncpg out of the import
# graph of everything that only talks to `Store`).
_BACKENDS = {
    "memory": "durable.store.memory:MemoryStore",
    "postgres": "durable.store.postgres:PostgresStore",
    "postgresql": "durable.store.postgres:PostgresStore",
}


def is_memory_url(url: str) -> bool:
    return url == MEMORY_URL or url == "memory:"


def store_for(url: str, *, schema: str = "durable", pool_size: int = 10) -> Store:
    """The store a URL names: `memory://` (a new in-process store) or a PostgreSQL DSN."""
    if is_memory_url(url):
        scheme, options = "memory", {}
    else:
        scheme = url.split(":", 1)[0].lower() if "://" in url else "postgresql"
        if scheme not in _BACKENDS or scheme == "memory":
            # libpq's "host=... dbname=..." strings have no scheme; any other scheme
            # (mysql://, sqlite://) is a mistake better named here than by the driver.
            raise ValueError(
                f"unsupported database URL scheme {scheme + '://'!r}: durable runs on "
                "PostgreSQL (postgresql://user@host/db) or in memory (memory://)"
            )
        options = {"schema": schema, "pool_size": pool_size}
    module_name, cls_name = _BACKENDS[scheme].split(":")
    cls: Any = getattr(importlib.import_module(module_name), cls_name)
    if scheme == "memory":
        return cast(Store, cls())
    return cast(Store, cls(url, **options))


__all__ = [
    "MEMORY_URL",
    "Batch",
    "BatchResult",
    "ChildOutcome",
    "ClaimedRun",
    "Created",
    "EventRow",
    "Extend",
    "Finish",
    "KeyStats",
    "Listener",
    "NewRun",
    "NoticeCallback",
    "QueueSpec",
    "QueueStats",
    "RunRecord",
    "ScheduleInfo",
    "ScheduleRow",
    "Store",
    "Suspend",
    "is_memory_url",
    "store_for",
]
