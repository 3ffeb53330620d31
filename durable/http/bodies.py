"""The JSON shapes of the HTTP API: request bodies (validated with msgspec) and answers.

The OpenAPI document (durable.http.openapi) is generated from these same structs, so
what is validated and what is documented cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from durable.runtime import Event, RunInfo
from durable.schedules import ScheduleInfo

# Names are stored as text: non-empty, no NUL (PostgreSQL rejects it), no 0x1F (it joins
# run ids in notifications). Declared here so msgspec checks them and OpenAPI shows them.
Name = Annotated[str, Meta(min_length=1, pattern="^[^\\u0000\\u001f]+$")]
TagKey = Annotated[str, Meta(min_length=1, max_length=128, pattern="^[^\\u0000\\u001f]+$")]
TagValue = Annotated[str, Meta(max_length=1024, pattern="^[^\\u0000]*$")]


class _Body(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Request bodies refuse unknown fields: a typo is a 400, not a silently ignored key."""


class TriggerBody(_Body):
    workflow: str
    input: Any = None
    version: str | None = None
    run_id: Name | None = None
    idempotency_key: Name | None = None
    parent_run_id: str | None = None
    tags: dict[TagKey, TagValue] | None = None


class PatchRunBody(_Body):
    tags: dict[TagKey, TagValue | None]


class EmitEventBody(_Body):
    run_id: str
    type: Name
    payload: Any = None


class CreateHookBody(_Body):
    run_id: str
    name: Name
    metadata: Any = None


class PayloadBody(_Body):
    payload: Any = None


class Triggered(msgspec.Struct):
    run_id: str
    status: str


class RunPage(msgspec.Struct):
    runs: list[RunInfo]
    next_cursor: str | None


class Cancelled(msgspec.Struct):
    run_id: str
    status: str


class Emitted(msgspec.Struct):
    run_id: str
    type: str


class CustomEventOut(msgspec.Struct):
    seq: int
    type: str
    payload: Any
    created_at: datetime | None


class HookCreated(msgspec.Struct):
    token: str


class HookExecuted(msgspec.Struct):
    run_id: str


class Signalled(msgspec.Struct):
    run_id: str
    name: str


class ScheduleState(msgspec.Struct):
    name: str
    paused: bool


class Health(msgspec.Struct):
    status: str
    database: str


class Error(msgspec.Struct):
    error: str
    message: str


def custom_event(e: Event) -> CustomEventOut:
    return CustomEventOut(seq=e.seq, type=e.name, payload=e.payload, created_at=e.created_at)


__all__ = [
    "Cancelled",
    "CreateHookBody",
    "CustomEventOut",
    "EmitEventBody",
    "Emitted",
    "Error",
    "Health",
    "HookCreated",
    "HookExecuted",
    "PatchRunBody",
    "PayloadBody",
    "RunInfo",
    "RunPage",
    "ScheduleInfo",
    "ScheduleState",
    "Signalled",
    "TriggerBody",
    "Triggered",
    "custom_event",
]
