"""durable: durable workflows for asyncio services, on PostgreSQL."""

from durable.context import ChildHandle, Context, ExecutionInfo, Hook, current_context
from durable.errors import (
    DurableError,
    NonDeterminismError,
    PayloadTooLarge,
    RunClosed,
    RunNotFound,
    SerializationError,
    StepFailed,
    ValidationError,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowNotFound,
)
from durable.retry import RetryPolicy
from durable.runtime import Event, RunHandle, RunInfo, RunStatus, Runtime
from durable.schedules import Schedule
from durable.workflow import WorkflowDef, workflow

__version__ = "0.1.0"

__all__ = [
    "ChildHandle",
    "Context",
    "DurableError",
    "Event",
    "ExecutionInfo",
    "Hook",
    "NonDeterminismError",
    "PayloadTooLarge",
    "RetryPolicy",
    "RunClosed",
    "RunHandle",
    "RunInfo",
    "RunNotFound",
    "RunStatus",
    "Runtime",
    "Schedule",
    "SerializationError",
    "StepFailed",
    "ValidationError",
    "WorkflowCancelled",
    "WorkflowDef",
    "WorkflowFailed",
    "WorkflowNotFound",
    "current_context",
    "workflow",
]
