"""durable/records.py: `run_info` builds RunInfo positionally; every field lands in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from durable import codec
from durable.core.vocabulary import RunStatus
from durable.records import Event, RunInfo, run_info
from durable.store.base import RunRecord


def _rec(status: str) -> RunRecord:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return RunRecord(
        run_id="id",
        workflow="wf",
        version="v1",
        status=status,
        input=codec.encode({"in": 1}),
        output=codec.encode([2]),
        error="err",
        parent_run_id="parent",
        pending=codec.encode([{"kind": "signal", "name": "go"}]),
        created_at=t,
        updated_at=t + timedelta(1),
        ready_at=t + timedelta(2),
        tags={"k": "v"},
        started_at=t + timedelta(3),
        finished_at=t + timedelta(4),
        queue="q",
        continued_as="as",
        continued_from="from",
        forked_from="forked",
    )


def test_run_info_maps_every_field() -> None:
    rec = _rec("suspended")
    history = [Event(1, "step_completed", "s", None, None, 0)]
    info = run_info(rec, history)
    t = rec.created_at
    assert info == RunInfo(
        run_id="id",
        workflow="wf",
        version="v1",
        status=RunStatus.SUSPENDED,
        input={"in": 1},
        output=[2],
        error="err",
        pending=[{"kind": "signal", "name": "go"}],
        history=history,
        parent_run_id="parent",
        created_at=t,
        updated_at=t + timedelta(1),
        tags={"k": "v"},
        started_at=t + timedelta(3),
        finished_at=t + timedelta(4),
        continued_as="as",
        continued_from="from",
        forked_from="forked",
    )
    assert type(info.status) is RunStatus
    assert info.tags is not rec.tags  # a copy: the record stays as stored


def test_run_info_pending_only_while_suspended() -> None:
    for status in RunStatus:
        info = run_info(_rec(status.value), [])
        assert info.status is status
        assert info.pending == ([{"kind": "signal", "name": "go"}] if status == "suspended" else [])
