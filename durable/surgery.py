"""Run surgery: `Runtime.fork` (a new run from an old run's history, cut at a step).

The pure part (where to cut, which children to restart, the copied events) is
`durable.core.fork`; this module does the reads and the one write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable import codec
from durable.core import fork as forking
from durable.core.vocabulary import RunStatus
from durable.errors import WorkflowNotFound
from durable.ids import new_run_id
from durable.store import NewRun
from durable.workflow import check_name

if TYPE_CHECKING:
    from durable.runtime import Runtime


async def fork(rt: Runtime, run_id: str, at: str | None, version: str | None) -> str:
    """Validate, build and write the fork of `run_id`; returns the new run's id.

    Everything is checked before the single store write (`Store.fork_run`), so an
    unknown run, a bad step or an unregistered version writes nothing.
    """
    rec = await rt._record(run_id)
    if at is not None:
        check_name(at, "step name")
    if version is None:
        defn = rt.registry.find(rec.workflow, rec.version)
    else:
        defn = rt.registry.find(rec.workflow, version)
        if defn is None:
            raise WorkflowNotFound(
                f"cannot fork run {run_id!r}: workflow {rec.workflow!r} version "
                f"{version!r} is not registered in this runtime"
            )
    input_value = codec.decode(rec.input)
    if defn is not None:
        defn.validate_input(input_value)
    events = await rt.store.load_events(run_id)
    step = forking.failed_step(run_id, events) if at is None else at
    cut = forking.cut_seq(run_id, events, step)
    restart: set[str] = set()
    for child in forking.children_before(events, cut):
        outcome = await rt.store.child_outcome(child)
        if outcome is None or outcome.status != RunStatus.COMPLETED:
            restart.add(child)
    new = NewRun(
        run_id=new_run_id(),
        workflow=rec.workflow,
        version=rec.version if version is None else version,
        input=rec.input if rec.input is not None else codec.encode(None),
        created_at=rt.clock.now(),
        deadline_s=None if defn is None else defn.execution_timeout,
    )
    await rt.store.fork_run(new, forking.fork_events(events, cut, restart), run_id, rt.clock.now())
    return new.run_id
