"""Loading the APP argument of `durable worker`/`serve`/`replay`, and the CLI's error type.

`APP` is `module` or `module:attr`: a module's @workflows, a Runtime, a @workflow or a
list of them. Kept apart from durable/cli.py so the command table stays readable.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from durable.runtime import Runtime
from durable.workflow import WorkflowDef

log = logging.getLogger("durable.cli")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An expected failure: reported as one line on stderr, with an exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclasses.dataclass
class App:
    """What `worker APP` loaded: the workflows, and the app's own Runtime if it had one."""

    workflows: list[WorkflowDef]
    runtime: Runtime | None = None


def _import_app_module(name: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise CliError(
                f"cannot import app module {name!r}: no module named {missing!r}"
            ) from None
        log.debug("importing %s failed", name, exc_info=True)
        raise CliError(
            f"importing app module {name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    except Exception as exc:
        log.debug("importing %s failed", name, exc_info=True)
        raise CliError(
            f"importing app module {name!r} failed: {type(exc).__name__}: {exc}"
        ) from None


def _unique(defs: Iterable[WorkflowDef]) -> list[WorkflowDef]:
    seen: set[int] = set()
    out: list[WorkflowDef] = []
    for d in defs:
        if id(d) not in seen:
            seen.add(id(d))
            out.append(d)
    return out


def load_app(spec: str) -> App:
    """Resolve `module` or `module:attr` into the workflows to register."""
    module_name, _, attr = spec.partition(":")
    if not module_name or (":" in spec and not attr):
        raise CliError(f"invalid APP {spec!r}: expected `module` or `module:attr`", EXIT_USAGE)
    module = _import_app_module(module_name)
    if not attr:
        defs = _unique(v for v in vars(module).values() if isinstance(v, WorkflowDef))
        if defs:
            return App(defs)
        runtimes = [v for v in vars(module).values() if isinstance(v, Runtime)]
        if len(runtimes) == 1 and runtimes[0].registry.all():
            return App(runtimes[0].registry.all(), runtimes[0])
        raise CliError(f"no @workflow found in module {module_name!r}")
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, Runtime):
        defs = obj.registry.all()
        if not defs:
            raise CliError(f"the Runtime {spec!r} has no registered workflows")
        return App(defs, obj)
    if isinstance(obj, WorkflowDef):
        return App([obj])
    if (
        isinstance(obj, list | tuple | set | frozenset)
        and obj
        and all(isinstance(d, WorkflowDef) for d in obj)
    ):
        return App(_unique(obj))
    raise CliError(
        f"{spec!r} is {type(obj).__name__}, not a Runtime, a @workflow or a list of @workflows"
    )
