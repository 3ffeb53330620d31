"""The pure replay core: events, history matching, per-operation decisions, run state.

No I/O, no clock, no event loop: history and `now` in, decisions out.
"""

from durable.core.decide import LIVE, Decision, Fail, Live, Retry, Value, Wait
from durable.core.events import Event, EventKind, OpKind
from durable.core.history import History
from durable.core.state import ContinueAsNew, DriveResult, Phase, RunAborted, RunState

__all__ = [
    "LIVE",
    "ContinueAsNew",
    "Decision",
    "DriveResult",
    "Event",
    "EventKind",
    "Fail",
    "History",
    "Live",
    "OpKind",
    "Phase",
    "Retry",
    "RunAborted",
    "RunState",
    "Value",
    "Wait",
]
