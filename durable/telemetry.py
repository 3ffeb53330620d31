"""OpenTelemetry spans for run attempts and steps; no-ops unless an SDK is configured."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

_tracer = trace.get_tracer("durable")


def enabled() -> bool:
    """Whether an OpenTelemetry SDK is installed; until then span calls are skipped.

    The API's no-op spans still cost microseconds per step, which shows at 10k steps/s.
    """
    return type(trace.get_tracer_provider()) is not trace.ProxyTracerProvider


class RunTelemetry:
    """Span helpers bound to one run, so every span carries the same identifying attributes."""

    __slots__ = ("_attempt", "_attrs", "on")

    def __init__(self, workflow: str, version: str, run_id: str) -> None:
        self._attempt: trace.Span | None = None
        # Decided once per attempt (`attempt()`), not per step: asking OpenTelemetry
        # whether an SDK is set up reads os.environ, a few µs at every step.
        self.on = False
        self._attrs = {
            "durable.workflow": workflow,
            "durable.version": version,
            "durable.run_id": run_id,
        }

    @contextmanager
    def attempt(self) -> Iterator[trace.Span | None]:
        self.on = enabled()
        if not self.on:
            yield None
            return
        with _tracer.start_as_current_span(
            f"durable.run {self._attrs['durable.workflow']}", attributes=self._attrs
        ) as span:
            self._attempt = span
            try:
                yield span
            finally:
                self._attempt = None

    @contextmanager
    def step(self, name: str, attempt: int) -> Iterator[trace.Span | None]:
        if not self.on:
            yield None
            return
        # Parent the step explicitly on the current attempt: the workflow coroutine was
        # created under the first attempt's span and keeps that context across resumes.
        parent = None if self._attempt is None else trace.set_span_in_context(self._attempt)
        with _tracer.start_as_current_span(
            f"durable.step {name}",
            context=parent,
            attributes={**self._attrs, "durable.step": name, "durable.attempt": attempt},
        ) as span:
            yield span
