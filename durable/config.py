"""`RuntimeConfig`: a Runtime's settings, validated once and frozen.

`Runtime(**options)` builds one; `Runtime.from_config(config, ...)` takes one, so the
CLI (or any wrapper) derives a runtime from another with `msgspec.structs.replace`
instead of copying settings one by one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from durable.db_schema import check_schema
from durable.durations import parse_duration
from durable.errors import ValidationError

# The sticky cache's default byte bound: an estimate (see durable/worker/sticky.py), so
# that runs holding large results do not fill memory before the count bound is reached.
DEFAULT_STICKY_BYTES = 256 * 1024 * 1024


class RuntimeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting of a Runtime except what it runs on (dsn/store), its workflows
    and its clock. Durations are seconds; see `Runtime` for what each one means."""

    worker: bool = True
    concurrency: int = 1000
    lease_s: float = 30.0
    schema: str = "durable"
    timezone: str = "UTC"
    poll_interval: float = 1.0
    sticky_cache: int = 10_000
    sticky_cache_bytes: int = DEFAULT_STICKY_BYTES
    max_payload_bytes: int | None = 16 * 1024 * 1024
    shutdown_grace: float = 10.0
    pool_size: int = 10
    listen: bool = True
    local_dispatch: bool = True
    # Seconds a worker waits after a notification before claiming, so a burst of
    # triggers from elsewhere is claimed in one batch (Sonamu `listenDelay`). None: at once.
    listen_delay: float | None = None
    cancel_grace: float = 30.0

    def __post_init__(self) -> None:
        # On every store, before anything is created: the name becomes SQL identifiers
        # (schema, search_path, NOTIFY channel) that must all agree (db_schema.py).
        check_schema(self.schema)
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"invalid concurrency {self.concurrency!r}: must be >= 1")
        if self.lease_s <= 0:
            raise ValueError(f"invalid lease {self.lease_s!r}: must be > 0")
        if self.listen_delay is not None and not 0 <= self.listen_delay <= 60:
            raise ValueError(f"invalid listen_delay {self.listen_delay!r}: must be 0 to 60s")
        _check_count("sticky_cache", self.sticky_cache)
        _check_count("sticky_cache_bytes", self.sticky_cache_bytes)

    @classmethod
    def build(
        cls,
        *,
        worker: bool = True,
        concurrency: int = 1000,
        lease: Any = "30s",
        schema: str = "durable",
        timezone: str = "UTC",
        poll_interval: Any = "1s",
        sticky_cache: int = 10_000,
        sticky_cache_bytes: int = DEFAULT_STICKY_BYTES,
        max_payload_bytes: int | None = 16 * 1024 * 1024,
        shutdown_grace: Any = "10s",
        pool_size: int = 10,
        listen: bool = True,
        local_dispatch: bool = True,
        listen_delay: Any = None,
        cancel_grace: Any = "30s",
    ) -> RuntimeConfig:
        """From Runtime's keyword arguments (durations in any accepted form)."""
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"invalid concurrency {concurrency!r}: must be >= 1")
        lease_s = parse_duration(lease)
        if lease_s <= 0:
            raise ValueError(f"invalid lease {lease!r}: must be > 0")
        poll_s = parse_duration(poll_interval)
        if poll_s < 0.01:  # 0 would make an idle worker spin on the CPU
            raise ValueError(f"invalid poll_interval {poll_interval!r}: must be >= 10ms")
        return cls(
            worker=worker,
            concurrency=concurrency,
            lease_s=lease_s,
            schema=schema,
            timezone=timezone,
            poll_interval=poll_s,
            sticky_cache=sticky_cache,
            sticky_cache_bytes=sticky_cache_bytes,
            max_payload_bytes=max_payload_bytes,
            shutdown_grace=parse_duration(shutdown_grace),
            pool_size=pool_size,
            listen=listen,
            local_dispatch=local_dispatch,
            listen_delay=None if listen_delay is None else parse_duration(listen_delay),
            cancel_grace=parse_duration(cancel_grace),
        )


def _check_count(name: str, value: object) -> None:
    """A size setting: a whole number >= 0 (0 disables what it bounds)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"invalid {name} {value!r}: must be a whole number >= 0")
