"""Every recorded history (*.json, export format) must fit the current workflow code.

This is the `durable replay` bar run in the default suite: `durable.testing.replay`
re-drives each workflow against its recorded run without executing any step; a
deliberate change to a workflow's ctx calls must be reported at the position where it
diverges.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from durable import Event, NonDeterminismError, RunInfo, RunStatus, codec
from durable.core.events import EventKind
from durable.testing import replay
from durable.testing.replay import ReplayDivergence, load_file, to_recorded

from . import workflows as w

HERE = Path(__file__).resolve().parent
FILES = sorted(HERE.glob("*.json"))
BY_NAME = {d.name: d for d in w.WORKFLOWS}


def test_there_are_enough_histories_and_they_cover_every_event_kind() -> None:
    assert len(FILES) >= 10
    kinds = {e["kind"] for f in FILES for e in json.loads(f.read_text())["events"]}
    assert kinds == {k.value for k in EventKind}
    statuses = {json.loads(f.read_text())["run"]["status"] for f in FILES}
    assert statuses == {"completed", "failed", "cancelled"}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_history_fits_current_code(path: Path) -> None:
    w.CALLS.clear()
    w.FLAKY.clear()
    rec = load_file(path)
    result = replay(BY_NAME[rec.workflow], path, workflows=w.WORKFLOWS)
    # Not vacuous: the code walked the recorded positions (a child failing at once and a
    # run cancelled before its first call are the only ones with nothing to walk).
    positions = {e.pos for e in rec.events if e.pos >= 0}
    assert result.positions >= len(positions)
    assert not w.CALLS and not w.FLAKY, "replay ran a step"


def test_unfinished_history_stops_where_it_ends() -> None:
    result = replay(w.drifting, HERE / "parked.json")
    assert result.stopped_at == 1  # the open signal wait


def test_changed_code_fails_naming_the_position() -> None:
    with pytest.raises(NonDeterminismError) as caught:
        replay(w.recorded_order_changed, HERE / "order.json")
    err = caught.value
    assert isinstance(err, ReplayDivergence)
    assert err.position == 1
    assert err.asked == "sleep 'settle'"
    assert err.recorded.startswith("record 'now'")
    assert "at position 1" in str(err)


def test_the_code_that_parked_a_run_still_misfits_its_history() -> None:
    with pytest.raises(ReplayDivergence) as caught:
        replay(w.drifting_changed, HERE / "parked.json")
    assert caught.value.position == 0
    assert caught.value.asked == "step 'a_renamed'"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_a_runinfo_gives_back_the_stored_bytes(path: Path) -> None:
    """`replay(wf, rt.get_run(id))` re-encodes decoded payloads: they must be the bytes
    the engine stored, engine metadata (times, failures, child refs) included."""
    rec = load_file(path)
    info = RunInfo(
        run_id=rec.run_id,
        workflow=rec.workflow,
        version=rec.version,
        status=RunStatus(rec.status),
        input=codec.decode(rec.input),
        output=None,
        error=rec.error,
        pending=[],
        history=[
            Event(e.seq, e.kind, e.name, codec.decode(e.payload), e.created_at, e.pos)
            for e in rec.events
        ],
        parent_run_id=rec.parent_run_id,
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )
    again = to_recorded(info)
    null = codec.encode(None)  # decoded, an encoded null and "no payload" are both None
    assert again.events == [
        msgspec.structs.replace(e, payload=None) if e.payload == null else e for e in rec.events
    ]
    assert again.input == rec.input
    replay(BY_NAME[rec.workflow], info, workflows=w.WORKFLOWS)
