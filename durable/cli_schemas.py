"""`durable worker APP --schema a --schema b` (or `--schemas a,b`): one process, many schemas.

Why: with schema-based sharding (Citus, docs/scaling.md) a deployment has one schema
per tenant or work partition; a process per schema would waste memory and connections.
Here one process runs one `Runtime` per schema on the same event loop, each with the
settings `worker APP` would give it alone (the app Runtime's, with the command line's
overrides). Each Runtime keeps its own pool (`pool_size` connections at most, one
opened eagerly), one LISTEN connection, a claim loop, a heartbeat, a committer and a
scheduler: about `schemas x (pool_size + 1)` connections, and CPU shared by all schemas
(one Python thread). Migrations run schema after schema at start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from durable.cli_app import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, App, CliError
from durable.db_schema import check_schema
from durable.errors import ValidationError
from durable.redact import redact_dsn
from durable.runtime import Runtime

log = logging.getLogger("durable.cli")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker's own schema options (the global `--schema` still names one)."""
    parser.add_argument(
        "--schema",
        dest="worker_schemas",
        action="append",
        default=None,
        metavar="NAME",
        help="a schema to serve; repeat it to serve several schemas from this one process",
    )
    parser.add_argument(
        "--schemas",
        dest="schema_list",
        default=None,
        metavar="A,B,...",
        help="comma-separated schemas to serve from this one process (one Runtime each)",
    )


def requested(args: argparse.Namespace) -> list[str]:
    """The schemas named by the worker's `--schema`/`--schemas`, validated, in order."""
    names = list(getattr(args, "worker_schemas", None) or [])
    listed = getattr(args, "schema_list", None)
    if listed is not None:
        names.extend(part.strip() for part in listed.split(","))
    out: list[str] = []
    for name in names:
        try:
            check_schema(name)
        except ValidationError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        if name not in out:
            out.append(name)
    return out


def run(app: App, args: argparse.Namespace, schemas: list[str]) -> int:
    """Serve every schema in `schemas` from this process until SIGTERM/SIGINT."""
    if getattr(args, "reload", False):
        raise CliError("--reload serves one schema: drop --reload or name one schema", EXIT_USAGE)
    from durable.cli import _remember_secrets, _worker_runtime

    runtimes: list[Runtime] = []
    dsn = ""
    for name in schemas:
        one = argparse.Namespace(**vars(args))
        one.schema = name
        rt, dsn = _worker_runtime(app, one)
        runtimes.append(rt)
    _remember_secrets(dsn)
    try:
        asyncio.run(serve(runtimes, dsn))
    except asyncio.CancelledError:
        return EXIT_INTERRUPTED
    return EXIT_OK


async def serve(runtimes: list[Runtime], dsn: str) -> str | None:
    """Enter every runtime, wait for SIGTERM/SIGINT, then stop them all (in parallel)."""
    from durable.cli import _opened

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []
    main_task = asyncio.current_task()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("second %s: stopping without waiting for in-flight runs", sig.name)
            if main_task is not None:
                main_task.cancel()
            return
        received.append(sig.name)
        stop.set()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for rt in runtimes:
                await stack.enter_async_context(_opened(rt, dsn))
            first = runtimes[0]
            names = ", ".join(f"{d.name}@{d.version}" for d in first.registry.all())
            log.info(
                "worker started: %d workflow(s) [%s], concurrency=%d per schema,"
                " %d schemas [%s], database=%s",
                len(first.registry.all()),
                names,
                first.concurrency,
                len(runtimes),
                ", ".join(rt.schema for rt in runtimes),
                redact_dsn(dsn),
            )
            await stop.wait()
            log.info("received %s: stopping, releasing in-flight runs", received[0])
            # Stop all schemas at once, so the shutdown grace is not paid once per schema.
            await asyncio.gather(*(rt.__aexit__(None, None, None) for rt in runtimes))
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("worker stopped")
    return received[0] if received else None
