"""The pure replay core: events, history matching and per-operation state. No I/O, no clock."""

from durable.core.events import Event, EventKind, OpKind
from durable.core.history import History, OpState

__all__ = ["Event", "EventKind", "History", "OpKind", "OpState"]
