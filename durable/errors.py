"""The exception hierarchy: every error the engine raises on purpose derives from DurableError."""

from __future__ import annotations


class DurableError(Exception):
    """Base of every error `durable` raises deliberately, so callers can catch one type."""


class ValidationError(DurableError, ValueError):
    """Input (or an argument) failed validation; nothing was written."""


class WorkflowNotFound(DurableError, LookupError):
    """No workflow of that name (and version) is registered in this runtime."""


class RunNotFound(DurableError, LookupError):
    """No run (or hook token) with that id exists."""


class RunClosed(DurableError):
    """The run has already finished (or the hook was already used), so it takes no more input."""


class NonDeterminismError(DurableError):
    """Workflow code diverged from the run's recorded history; the run is parked as failed."""


class SerializationError(DurableError, TypeError):
    """A value could not be encoded (or decoded) by the msgspec codec."""


class PayloadTooLarge(ValidationError):
    """An encoded payload exceeds the runtime's configured size limit."""


class StepFailed(DurableError):
    """A step failed for good (retries exhausted, non-retryable error, or unencodable result).

    Raised inside the workflow at the `ctx.step` call, so it can be caught for fallback logic.
    """

    def __init__(
        self,
        message: str,
        *,
        step: str,
        error_type: str,
        error_message: str,
        traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback
        """The failed attempt's formatted traceback (bounded), when it was recorded."""


class WorkflowFailed(DurableError):
    """A run ended `failed`; raised by `handle.result()` and in a parent awaiting a child."""

    def __init__(self, message: str, *, run_id: str, error: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.error = error


class WorkflowCancelled(DurableError):
    """A run ended `cancelled`; raised by `handle.result()` and in a parent awaiting a child."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class RunNotFailed(DurableError):
    """Only a failed run (or one parked by NonDeterminismError) can be retried."""


class SchemaNotFound(DurableError):
    """The database schema named does not exist or holds no durable tables."""


class FenceLost(DurableError):
    """Internal: this worker no longer owns the run (lease taken over, or run closed)."""


__all__ = [
    "DurableError",
    "FenceLost",
    "NonDeterminismError",
    "PayloadTooLarge",
    "RunClosed",
    "RunNotFailed",
    "RunNotFound",
    "SchemaNotFound",
    "SerializationError",
    "StepFailed",
    "ValidationError",
    "WorkflowCancelled",
    "WorkflowFailed",
    "WorkflowNotFound",
]
