"""OpenTelemetry spans: one per run attempt and one per step, with identifying attributes."""

from __future__ import annotations

from typing import Any

import pytest

from durable import Context, RetryPolicy, workflow

from .conftest import MakeRuntime

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


@pytest.fixture(scope="module")
def spans() -> Any:
    from opentelemetry import trace

    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def test_spans_per_attempt_and_step_with_errors(make_rt: MakeRuntime, spans: Any) -> None:
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first try fails")
        return "ok"

    @workflow(retry_policy=RetryPolicy(max_attempts=2, initial_interval="300ms"))
    async def traced(ctx: Context, _: Any) -> str:
        result: str = await ctx.step("flaky", flaky)
        return result

    spans.clear()  # the exporter is shared by the module's tests (and store params)
    async with make_rt(traced) as rt:
        h = await rt.trigger(traced, None)
        assert await h.result(timeout=10) == "ok"
    finished = spans.get_finished_spans()
    steps = [s for s in finished if s.name == "durable.step flaky"]
    runs = [s for s in finished if s.name == "durable.run traced"]
    assert len(steps) == 2
    assert [s.attributes["durable.attempt"] for s in steps] == [1, 2]
    assert steps[0].status.status_code.name == "ERROR"
    assert any(e.name == "exception" for e in steps[0].events)
    assert steps[1].attributes["durable.run_id"] == h.run_id
    assert runs
    # The retry ran after a suspension and resume: its span hangs under the new attempt.
    run_ids = {r.context.span_id for r in runs}
    assert steps[0].parent.span_id in run_ids
    assert steps[1].parent.span_id in run_ids
    assert steps[0].parent.span_id != steps[1].parent.span_id
    assert runs[0].attributes["durable.workflow"] == "traced"
    assert runs[0].attributes["durable.version"] == "1"
