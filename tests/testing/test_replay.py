"""`durable.testing.replay` on runs recorded by a real Runtime: what fits, what does not.

Each misfit case is a workflow changed after recording, the way a deploy changes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from durable import Context, NonDeterminismError, Runtime, ValidationError, codec, workflow
from durable.core.history import StepFailure, Until, meta_encode
from durable.testing import ReplayDivergence, replay
from durable.testing.replay import check_recorded, load_document

CALLS: list[str] = []


def _work(tag: str) -> str:
    CALLS.append(tag)
    return tag.upper()


@workflow(name="pipeline")
async def pipeline(ctx: Context, n: int) -> Any:
    first = await ctx.step("first", _work, "a")
    await ctx.emit_event("halfway", {"n": n})
    second = await ctx.step("second", _work, "b")
    return [first, second, n]


@workflow(name="pipeline")
async def returns_early(ctx: Context, n: int) -> Any:
    first = await ctx.step("first", _work, "a")
    return [first]


@workflow(name="pipeline")
async def asks_for_more(ctx: Context, n: int) -> Any:
    first = await ctx.step("first", _work, "a")
    await ctx.emit_event("halfway", {"n": n})
    second = await ctx.step("second", _work, "b")
    await ctx.step("third", _work, "c")
    return [first, second, n]


@workflow(name="pipeline")
async def raises_instead(ctx: Context, n: int) -> Any:
    await ctx.step("first", _work, "a")
    await ctx.emit_event("halfway", {"n": n})
    await ctx.step("second", _work, "b")
    raise RuntimeError("new validation")


@workflow(name="pipeline")
async def catches_divergence(ctx: Context, n: int) -> Any:
    with contextlib.suppress(NonDeterminismError):
        await ctx.step("renamed", _work, "a")
    return "swallowed"


@workflow(name="gate")
async def gate(ctx: Context, _: Any) -> Any:
    await ctx.step("before", _work, "x")
    got = await ctx.wait_for_signal("open")
    await ctx.step("after", _work, "y")
    return got


@workflow(name="gate")
async def gate_more_before(ctx: Context, _: Any) -> Any:
    await ctx.step("before", _work, "x")
    got = await ctx.wait_for_signal("open")
    await ctx.step("after", _work, "y")
    await ctx.step("extra", _work, "z")
    return got


async def _completed(dsn: str, schema: str) -> Any:
    async with Runtime(dsn, schema=schema, workflows=[pipeline]) as rt:
        h = await rt.trigger(pipeline, 3)
        assert await h.result(timeout=20) == ["A", "B", 3]
        return await rt.get_run(h.run_id), await rt.export_run(h.run_id)


async def test_unchanged_code_fits_from_runinfo_export_and_json(dsn: str, schema: str) -> None:
    info, doc = await _completed(dsn, schema)
    CALLS.clear()
    for source in (info, doc, json.dumps(doc)):
        result = replay(pipeline, source)
        assert (result.positions, result.stopped_at) == (3, None)
    assert CALLS == [], "replay must not run steps"
    # Also awaitable, from inside a running loop.
    assert (await replay(pipeline, info)).positions == 3


@pytest.mark.parametrize(
    ("changed", "position", "asked", "recorded"),
    [
        (returns_early, 1, "nothing more (the workflow returned)", "event 'halfway'"),
        (asks_for_more, 3, "step 'third'", "nothing more: the run ended (run_completed)"),
        (raises_instead, 3, "an end by RuntimeError: new validation", "the run completed"),
        (catches_divergence, 0, "step 'renamed'", "step 'first'"),
    ],
)
async def test_changed_code_misfits(
    dsn: str, schema: str, changed: Any, position: int, asked: str, recorded: str
) -> None:
    info, doc = await _completed(dsn, schema)
    CALLS.clear()
    with pytest.raises(ReplayDivergence) as caught:
        replay(changed, doc)
    err = caught.value
    assert isinstance(err, NonDeterminismError)
    assert (err.position, err.run_id) == (position, info.run_id)
    assert err.asked == asked
    assert err.recorded.startswith(recorded)
    assert f"at position {position}" in str(err)
    assert CALLS == []


async def test_unfinished_run_fits_up_to_where_history_ends(dsn: str, schema: str) -> None:
    async with Runtime(dsn, schema=schema, workflows=[gate]) as rt:
        h = await rt.trigger(gate, None)
        for _ in range(500):
            if await h.status() == "suspended":
                break
            await asyncio.sleep(0.02)
        info = await rt.get_run(h.run_id)
    assert [e.kind for e in info.history] == ["step_completed", "signal_waiting"]
    CALLS.clear()
    # The code past the open wait is not judged: the run has not got there yet.
    assert replay(gate, info).stopped_at == 1
    assert replay(gate_more_before, info).stopped_at == 1
    assert CALLS == []


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="@workflow"):
        replay(lambda ctx, x: None, {})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not a durable run export"):
        replay(pipeline, {"format": "other"})
    doc = {
        "format": "durable-run/1",
        "run": {"run_id": "r", "workflow": "gate", "version": "1", "input_bytes": None},
        "events": [],
    }
    with pytest.raises(ValueError, match="'gate', not 'pipeline'"):
        replay(pipeline, doc)
    doc["events"] = [{"seq": 1, "pos": 0, "kind": "step_completed", "name": "x", "payload": "zz"}]
    with pytest.raises(ValidationError, match="hex"):
        replay(gate, doc)


def _doc(workflow_name: str, events: list[tuple[int, str, str, bytes | None]]) -> dict[str, Any]:
    return {
        "format": "durable-run/1",
        "run": {
            "run_id": "r1",
            "workflow": workflow_name,
            "version": "1",
            "status": "suspended",
            "input_bytes": codec.encode(None).hex(),
        },
        "events": [
            {"seq": i + 1, "pos": pos, "kind": kind, "name": name, "payload": _hex(p)}
            for i, (pos, kind, name, p) in enumerate(events)
        ],
    }


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


@workflow(name="branches")
async def branches(ctx: Context, _: Any) -> Any:
    return await asyncio.gather(ctx.sleep("tick", "1h"), ctx.step("two", _work, "2"))


@workflow(name="branches")
async def branches_renamed(ctx: Context, _: Any) -> Any:
    return await asyncio.gather(ctx.sleep("tick", "1h"), ctx.step("deux", _work, "2"))


def test_a_branch_still_waiting_does_not_hide_a_sibling_divergence() -> None:
    until = datetime.now(UTC) + timedelta(hours=1)
    doc = _doc(
        "branches",
        [
            (0, "timer_started", "tick", meta_encode(Until(until))),
            (1, "step_completed", "two", codec.encode("2")),
        ],
    )
    CALLS.clear()
    assert replay(branches, doc).stopped_at == 0  # the open timer
    with pytest.raises(ReplayDivergence) as caught:
        replay(branches_renamed, doc)
    assert (caught.value.position, caught.value.asked) == (1, "step 'deux'")
    assert CALLS == []


class Order(msgspec.Struct):
    order_id: int


@workflow(name="branches", schema=Order)
async def branches_with_schema(ctx: Context, order: Order) -> Any:
    return order.order_id


async def test_check_recorded_reports_runs_the_code_cannot_drive() -> None:
    doc = _doc("branches", [])  # recorded with input null, which Order refuses
    count, misfits = await check_recorded([branches_with_schema], [("f.json", load_document(doc))])
    assert count == 1
    assert [(m.run_id, m.source, m.position) for m in misfits] == [("r1", "f.json", None)]
    assert "ValidationError" in misfits[0].asked
    count, misfits = await check_recorded([branches], [("f.json", load_document(doc))])
    assert (count, misfits) == (1, [])
    count, misfits = await check_recorded([pipeline], [("f.json", load_document(doc))])
    assert misfits[0].recorded == "no such workflow"


@workflow(name="flaky")
async def flaky(ctx: Context, _: Any) -> Any:
    return await ctx.step("call", _work, "c")


def test_a_recorded_retry_stops_the_replay_without_running_the_step() -> None:
    # A retry with a due time is an open wait; one recorded without (due at once) would
    # start the next attempt: replay must stop before the body either way.
    later = datetime.now(UTC) + timedelta(minutes=5)
    CALLS.clear()
    for retry_at in (later, None):
        failure = StepFailure(1, "OSError", "down", final=False, retry_at=retry_at)
        doc = _doc("flaky", [(0, "step_failed", "call", meta_encode(failure))])
        result = replay(flaky, doc)
        assert (result.stopped_at, result.positions) == (0, 1)
    assert CALLS == []
    # The same history under a renamed step is a misfit at position 0.
    with pytest.raises(ReplayDivergence) as caught:
        replay(pipeline, {**doc, "run": {**doc["run"], "workflow": "pipeline"}})
    assert (caught.value.position, caught.value.asked) == (0, "step 'first'")


@workflow(name="pipeline")
async def logs_at_the_end(ctx: Context, n: int) -> Any:
    ctx.logger.warning("starting %s", n)
    first = await ctx.step("first", _work, "a")
    await ctx.emit_event("halfway", {"n": n})
    second = await ctx.step("second", _work, "b")
    ctx.logger.warning("finished")
    return [first, second, n]


def test_replay_is_silent() -> None:
    # Offline replay stays `replaying` past the last recorded position: ctx.logger,
    # which a worker silences while replaying, says nothing, before or after.
    doc = _doc(
        "pipeline",
        [
            (0, "step_completed", "first", codec.encode("A")),
            (1, "event_emitted", "halfway", codec.encode({"n": None})),
            (2, "step_completed", "second", codec.encode("B")),
        ],
    )
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("durable.workflow")
    logger.addHandler(handler)
    try:
        assert replay(logs_at_the_end, doc).positions == 3
    finally:
        logger.removeHandler(handler)
    assert records == []
