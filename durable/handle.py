"""`RunHandle`: what `trigger` returns, to ask a run's status or wait for its result.

Apart from runtime.py so that the waiting rules (a handed-over outcome used once,
continue-as-new followed, transient errors retried until the caller's timeout) read on
their own; the waiting itself is `Runtime._wait_finished` and `wait_or_explain`.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from durable import codec
from durable.core.vocabulary import RunStatus
from durable.diagnostics import wait_or_explain
from durable.durations import parse_duration
from durable.errors import WorkflowCancelled, WorkflowFailed
from durable.outage import retry_transient
from durable.store import Finish

if TYPE_CHECKING:
    from durable.runtime import Runtime


class RunHandle:
    """A run started by `trigger`: ask its status or wait for its result."""

    def __init__(self, runtime: Runtime, run_id: str, created: bool = True) -> None:
        self._rt = runtime
        self.run_id = run_id
        self.created = created
        # Set when this process finished the run while the handle was alive (see
        # Runtime._watch): result() then needs no query.
        self._outcome: Finish | None = None
        # True from a trigger that created the run while LISTEN was up until a notice
        # says it ended (or notices may have been lost): the run has not ended, so
        # result() need not read it before waiting (see Runtime._wait_finished).
        self._unended = False

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id!r}>"

    async def status(self) -> RunStatus:
        rec = await self._rt._record(self.run_id)
        return RunStatus(rec.status)

    async def result(self, timeout: Any = None) -> Any:
        """Wait for the run to finish and return its output.

        Raises WorkflowFailed or WorkflowCancelled for those ends, and the built-in
        TimeoutError when `timeout` passes first (the run is left alone). A transient
        database error (a lost connection, a restart) is retried with backoff until the
        timeout; only other errors are raised.
        """
        seconds = None if timeout is None else parse_duration(timeout)
        # An outcome this process handed over is used once: a later call (say after
        # `rt.retry` re-opened the run) asks again.
        done, self._outcome = self._outcome, None
        run_id = self.run_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (seconds or 0.0)
        if done is not None:
            status, output, error = done.status, done.output, done.error
        else:
            status, output, error = await wait_or_explain(self._rt, run_id, seconds, self)
            self._outcome = None  # a hand-over that raced this wait is answered already
        # A run that continued as new ends completed with no output at all (a returned
        # None is stored encoded): follow it to the chain's last run.
        while status == RunStatus.COMPLETED and output is None:
            left = None if seconds is None else max(deadline - loop.time(), 0.0)
            async with asyncio.timeout(left):  # a database still away when time is up
                record = await retry_transient(functools.partial(self._rt._record, run_id))
            if record.continued_as is None:
                break
            run_id = record.continued_as
            left = None if seconds is None else max(deadline - loop.time(), 0.0)
            status, output, error = await wait_or_explain(self._rt, run_id, left)
        if status == RunStatus.COMPLETED:
            return codec.decode(output)
        if status == RunStatus.CANCELLED:
            raise WorkflowCancelled(f"run {run_id!r} was cancelled", run_id=run_id)
        raise WorkflowFailed(f"run {run_id!r} failed: {error}", run_id=run_id, error=error)
