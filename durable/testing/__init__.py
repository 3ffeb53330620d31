"""Testing helpers: a runtime on a virtual clock, and offline replay of recorded runs.

`TestRuntime` runs workflows with time under the test's control (a 30-day sleep ends
in milliseconds); `replay` checks that changed workflow code still fits the histories
of runs recorded earlier, without running any step.
"""

from durable.testing.replay import FORMAT, ReplayDivergence, ReplayResult, replay
from durable.testing.runtime import TestRuntime, VirtualClock

__all__ = [
    "FORMAT",
    "ReplayDivergence",
    "ReplayResult",
    "TestRuntime",
    "VirtualClock",
    "replay",
]
