"""The `durable` command: run a worker, inspect and steer runs, manage schedules.

    durable [--dsn DSN] [--schema NAME] COMMAND ...

The DSN defaults to ``$DURABLE_DSN``, the schema to ``$DURABLE_SCHEMA``. Exit status: 0 on success, 1 with a one-line
reason on stderr when the command fails (unknown run, closed run, database
unreachable...), 2 for usage errors. The DSN's password is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import logging
import os
import re
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import msgspec

from durable import cli_schemas
from durable.cli_app import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    App,
    CliError,
    load_app,
)
from durable.cli_format import (
    clip as _clip,
)
from durable.cli_format import (
    compact as _compact,
)
from durable.cli_format import (
    dump_json as _dump_json,
)
from durable.cli_format import (
    fmt_time as _fmt_time,
)
from durable.cli_format import (
    out as _out,
)
from durable.cli_format import (
    table as _table,
)
from durable.cli_format import (
    to_json_value as _to_json_value,
)
from durable.cli_runs import add_runs_commands, situation_fields, traceback_lines
from durable.errors import DurableError
from durable.loop import run as run_loop
from durable.redact import KEYWORD_PASSWORD, redact_dsn
from durable.runtime import Event, RunInfo, RunStatus, Runtime

log = logging.getLogger("durable.cli")

PROG = "durable"
DEFAULT_SCHEMA = "durable"
#: The name on the package index (the import name stays `durable`).
DISTRIBUTION = "durable-pg"

LONG_PAYLOAD = 1000


# -- secrets ---------------------------------------------------------------------------

_secrets: set[str] = set()


def _remember_secrets(dsn: str) -> None:
    """Note the DSN's password so that no output of this process can show it."""
    with contextlib.suppress(ValueError):
        parts = urlsplit(dsn)
        if parts.password:
            _secrets.add(parts.password)
            _secrets.add(unquote(parts.password))
    for m in KEYWORD_PASSWORD.finditer(dsn):
        _secrets.add(m.group(2).strip("'"))
    for m in re.finditer(r"[?&]password=([^&#]*)", dsn, re.IGNORECASE):
        _secrets.add(m.group(1))
        _secrets.add(unquote(m.group(1)))
    _secrets.discard("")


def _scrub(text: str) -> str:
    """`text` with every known secret replaced by ``***``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class _ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _scrub(super().format(record))


def _setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)


# -- formatting ------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(_scrub(text).split())


# -- arguments -------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _json_payload(text: str) -> Any:
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise CliError(f"invalid JSON payload {_clip(text)}: {exc}", EXIT_USAGE) from None
    except RecursionError:
        raise CliError(
            f"invalid JSON payload {_clip(text)}: nested too deeply", EXIT_USAGE
        ) from None


_GLOBAL_WITH_VALUE = ("--dsn", "--schema")


def _protect_hook_token(argv: list[str]) -> list[str]:
    """`durable hook -abc`: a token may start with '-' (older tokens could), and argparse
    would read it as an option; an explicit '--' before it makes it positional."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _GLOBAL_WITH_VALUE else 1
    if (
        i + 1 < len(argv)
        and argv[i] == "hook"
        and argv[i + 1].startswith("-")
        and argv[i + 1] not in ("-h", "--help", "--")
    ):
        return [*argv[: i + 1], "--", *argv[i + 1 :]]
    return argv


def installed_version() -> str:
    """The version pip installed; a source checkout that was never installed has none."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        from durable import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run and inspect durable workflows on PostgreSQL.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {installed_version()}")
    parser.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL DSN (default: $DURABLE_DSN)",
    )
    parser.add_argument(
        "--schema",
        default=os.environ.get("DURABLE_SCHEMA") or None,
        help=f"database schema holding durable's tables (default: $DURABLE_SCHEMA, "
        f"else the app Runtime's for `worker`, else {DEFAULT_SCHEMA})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("worker", help="execute runs of the workflows found in APP")
    p.add_argument("app", metavar="APP", help="`module` or `module:attr` to load workflows from")
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=None,
        help="most runs executing at once (default: 1000, or the app Runtime's)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr (default: INFO)",
    )
    p.add_argument(
        "--reload",
        action="store_true",
        help="development: restart the worker when the app's files change "
        "(needs durable-pg[reload])",
    )
    cli_schemas.add_arguments(p)
    p.set_defaults(handler=_cmd_worker)

    runs = sub.add_parser("runs", help="list, show, export or purge runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", required=True)
    p = runs_sub.add_parser("list", help="list runs, newest first")
    p.add_argument("--workflow", default=None, help="only runs of this workflow name")
    p.add_argument(
        "--status",
        default=None,
        choices=[s.value for s in RunStatus],
        help="only runs with this status",
    )
    p.add_argument("--limit", type=_positive_int, default=100, help="at most N runs (default 100)")
    p.add_argument("--json", action="store_true", help="print a JSON array of RunInfo objects")
    p.set_defaults(handler=_client(_runs_list, read_only=True))
    p = runs_sub.add_parser("show", help="show one run: status, what it waits on, its history")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--json", action="store_true", help="print the RunInfo as JSON")
    p.set_defaults(handler=_client(_runs_show, read_only=True))
    p = runs_sub.add_parser(
        "fork", help="start a new run from RUN's history up to a step (default: the failed one)"
    )
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--at", default=None, metavar="STEP", help="default: the step that failed")
    p.add_argument("--version", default=None, help="run the fork on this version (needs --app)")
    p.add_argument(
        "--app", default=None, help="`module` or `module:attr` registering the fork's version"
    )
    p.set_defaults(handler=_client(_runs_fork))
    p = runs_sub.add_parser(
        "purge", help="delete finished runs (and their history) older than a duration"
    )
    p.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 30d, 12h")
    p.set_defaults(handler=_client(_runs_purge))
    add_runs_commands(runs_sub, _client)

    p = sub.add_parser("signal", help="send a signal to a run")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("name", metavar="NAME")
    p.add_argument("payload", metavar="JSON", nargs="?", default="null", help="default: null")
    p.set_defaults(handler=_client(_signal))

    p = sub.add_parser("trigger", help="start a run of a workflow defined in APP")
    p.add_argument("app", metavar="APP", help="`module` or `module:attr` holding the workflow")
    p.add_argument("workflow", metavar="WORKFLOW", help="the workflow's name")
    p.add_argument("payload", metavar="JSON", nargs="?", default="null", help="input, default null")
    p.add_argument("--version", default=None, help="default: the newest registered version")
    p.add_argument("--run-id", default=None, help="use this run id (existing run: no new run)")
    p.add_argument("--idempotency-key", default=None, help="same key: the existing run")
    p.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wait up to SECONDS for the result and print it as JSON (workers must be running)",
    )
    p.set_defaults(handler=_client(_trigger))

    p = sub.add_parser("hook", help="complete a hook with a payload (its token, once)")
    p.add_argument("token", metavar="TOKEN")
    p.add_argument("payload", metavar="JSON", nargs="?", default="null", help="default: null")
    p.set_defaults(handler=_client(_hook))

    p = sub.add_parser("cancel", help="cancel a run (and its unfinished children)")
    p.add_argument("run_id", metavar="RUN")
    p.set_defaults(handler=_client(_cancel))

    sched = sub.add_parser("schedules", help="list, pause or resume schedules")
    sched_sub = sched.add_subparsers(dest="schedules_command", metavar="SUBCOMMAND", required=True)
    p = sched_sub.add_parser("list", help="list schedules")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=_client(_schedules_list, read_only=True))
    p = sched_sub.add_parser("pause", help="stop a schedule from firing")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=_client(_schedules_pause))
    p = sched_sub.add_parser("resume", help="let a paused schedule fire again")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=_client(_schedules_resume))

    p = sub.add_parser("serve", help="serve the HTTP API and dashboard, with a worker for APP")
    p.add_argument("app", metavar="APP", help="`module` or `module:attr` to load workflows from")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (others need a token)")
    p.add_argument("--port", type=_positive_int, default=8000, help="default 8000")
    p.add_argument("--concurrency", type=_positive_int, default=None, help="as for worker")
    p.add_argument("--no-worker", action="store_true", help="API only: run `worker APP` apart")
    p.add_argument(
        "--processes",
        "--workers",
        type=_positive_int,
        default=1,
        help="serving processes on one port (SO_REUSEPORT; uvicorn calls them workers)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(handler=_cmd_serve)
    queues = sub.add_parser("queues", help="list flow-control queues")
    queues_sub = queues.add_subparsers(dest="queues_command", metavar="SUBCOMMAND", required=True)
    p = queues_sub.add_parser("list", help="active/pending runs per queue and key, rate window use")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=_client(_queues_list))

    p = sub.add_parser("migrate", help="create or upgrade durable's tables")
    p.set_defaults(handler=_client(_migrate))

    from durable.testing.commands import add_commands  # runs export, replay

    add_commands(sub, runs_sub)
    return parser


def _cli_dsn(args: argparse.Namespace) -> str | None:
    dsn: str | None = args.dsn or os.environ.get("DURABLE_DSN") or None
    return dsn


def _require_dsn(dsn: str | None) -> str:
    if not dsn:
        raise CliError(_no_database_message(), EXIT_USAGE)
    return dsn


def _no_database_message() -> str:
    """Say how to get a database; name the embedded server's DSN when one is running."""
    from durable import embedded

    running = None
    with contextlib.suppress(embedded.EmbeddedPostgresError, OSError):
        running = embedded.server_status()
    if running:
        return (
            "no database given: pass --dsn DSN or set DURABLE_DSN; the local embedded "
            f"PostgreSQL is running: export DURABLE_DSN={running}"
        )
    return (
        "no database given: pass --dsn DSN or set DURABLE_DSN; for a local throwaway "
        "PostgreSQL: export DURABLE_DSN=$(python -m durable.embedded start)"
    )


# -- client commands -------------------------------------------------------------------

ClientCommand = Callable[[Runtime, argparse.Namespace], Awaitable[None]]


@contextlib.asynccontextmanager
async def _opened(rt: Runtime, dsn: str) -> AsyncIterator[Runtime]:
    """Enter `rt`, turning a malformed DSN into a one-line error."""
    try:
        await rt.__aenter__()
    except (ValueError, OverflowError) as exc:  # OverflowError: a port over 65535
        if isinstance(exc, DurableError):
            raise
        raise CliError(f"cannot connect to PostgreSQL at {redact_dsn(dsn)}: {exc}") from None
    try:
        yield rt
    except BaseException:
        await rt.__aexit__(*sys.exc_info())
        raise
    else:
        await rt.__aexit__(None, None, None)


def _client(command: ClientCommand, read_only: bool = False) -> Callable[[argparse.Namespace], int]:
    """Wrap a command that needs a client Runtime (no worker, no LISTEN).

    A `read_only` command never creates the schema or its tables: an unknown schema
    fails naming it (SchemaNotFound) instead of appearing, empty.
    """

    def run(args: argparse.Namespace) -> int:
        dsn = _require_dsn(_cli_dsn(args))
        _remember_secrets(dsn)
        schema = args.schema or DEFAULT_SCHEMA

        async def go() -> None:
            rt = Runtime(dsn, schema=schema, worker=False, listen=False, pool_size=2)
            rt.migrate_on_start = not read_only
            async with _opened(rt, dsn):
                await command(rt, args)

        asyncio.run(go())
        return EXIT_OK

    return run


def _run_row(info: RunInfo) -> list[str]:
    return [
        info.run_id,
        info.workflow,
        info.version,
        str(info.status),
        _fmt_time(info.created_at),
        _fmt_time(info.updated_at),
    ]


async def _runs_list(rt: Runtime, args: argparse.Namespace) -> None:
    runs = await rt.list_runs(workflow=args.workflow, status=args.status, limit=args.limit)
    if args.json:
        _out(_dump_json(runs))
        return
    headers = ["RUN_ID", "WORKFLOW", "VERSION", "STATUS", "CREATED_AT", "UPDATED_AT"]
    _out(_table(headers, (_run_row(r) for r in runs)))


def _wait_line(wait: Any) -> str:
    if isinstance(wait, dict):
        kind = wait.get("kind", "?")
        name = wait.get("name")
        until = wait.get("until")
        text = f"{kind} {name!r}" if name is not None else str(kind)
        if until is not None:
            text += f" until {_fmt_time(until)}"
        return text
    return _compact(wait)


def _event_row(ev: Event) -> list[str]:
    return [
        str(ev.seq),
        _fmt_time(ev.created_at, "milliseconds"),
        ev.kind,
        ev.name or "-",
        "-" if ev.payload is None else _compact(ev.payload),
    ]


async def _runs_purge(rt: Runtime, args: argparse.Namespace) -> None:
    try:
        deleted = await rt.purge_runs(args.older_than)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    _out(f"deleted {deleted} finished run(s)")


async def _runs_show(rt: Runtime, args: argparse.Namespace) -> None:
    info = await rt.get_run(args.run_id)
    if args.json:
        _out(_dump_json(info))
        return
    fields: list[tuple[str, str]] = [
        ("run_id", info.run_id),
        ("workflow", f"{info.workflow} (version {info.version})"),
        ("status", str(info.status)),
    ]
    if info.parent_run_id is not None:
        fields.append(("parent", info.parent_run_id))
    # The chain of continue-as-new and forks, both ways.
    for label, other in (
        ("continued from", info.continued_from),
        ("continued as", info.continued_as),
        ("forked from", info.forked_from),
    ):
        if other is not None:
            fields.append((label, other))
    fields += [
        ("created_at", _fmt_time(info.created_at)),
        ("updated_at", _fmt_time(info.updated_at)),
        ("input", _compact(info.input, LONG_PAYLOAD)),
        ("output", "-" if info.output is None else _compact(info.output, LONG_PAYLOAD)),
        ("error", info.error or "-"),
    ]
    waits = [_wait_line(w) for w in info.pending] or ["-"]
    fields.append(("waiting on", waits[0]))
    fields += [("", w) for w in waits[1:]]
    fields += await situation_fields(rt, info)
    fields.append(("history", f"{len(info.history)} event(s)"))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        _out(f"{key.ljust(width)}  {value}".rstrip())
    for line in traceback_lines(info):
        _out(line)
    if info.history:
        rows = (_event_row(ev) for ev in info.history)
        table = _table(["SEQ", "TIME", "KIND", "NAME", "PAYLOAD"], rows)
        for line in table.splitlines():
            _out("  " + line)


async def _runs_fork(rt: Runtime, args: argparse.Namespace) -> None:
    if args.version is not None and args.app is None:
        raise CliError("--version needs --app APP: the version must be registered", EXIT_USAGE)
    if args.app is not None:
        rt.register(*load_app(args.app).workflows)
    handle = await rt.fork(args.run_id, at=args.at, version=args.version)
    _out(f"run {handle.run_id} forked from {args.run_id}")


async def _signal(rt: Runtime, args: argparse.Namespace) -> None:
    await rt.signal(args.run_id, args.name, args.payload_value)
    _out(f"signal {args.name!r} sent to run {args.run_id}")


async def _trigger(rt: Runtime, args: argparse.Namespace) -> None:
    # The app's definitions validate the input and resolve the version, as in-process.
    rt.register(*load_app(args.app).workflows)
    handle = await rt.trigger(
        args.workflow,
        args.payload_value,
        run_id=args.run_id,
        idempotency_key=args.idempotency_key,
        version=args.version,
    )
    state = "started" if handle.created else "exists (not started again)"
    if args.wait is None:
        _out(f"run {handle.run_id} {state}")
        return
    # The run id first (on stderr: stdout stays the result's JSON), so a timeout or an
    # interrupt still leaves the user the id to look at.
    sys.stderr.write(f"run {handle.run_id} {state}; waiting up to {args.wait:g}s\n")
    sys.stderr.flush()
    result = await handle.result(timeout=args.wait)
    _out(_dump_json(result))


async def _hook(rt: Runtime, args: argparse.Namespace) -> None:
    run_id = await rt.execute_hook(args.token, args.payload_value)
    _out(f"hook delivered to run {run_id}")


async def _cancel(rt: Runtime, args: argparse.Namespace) -> None:
    await rt.cancel(args.run_id)
    _out(f"run {args.run_id} cancelled")


def _as_dict(item: Any) -> dict[str, Any]:
    """A schedule (a `ScheduleInfo` struct) as a dict of its fields."""
    return msgspec.structs.asdict(item) if isinstance(item, msgspec.Struct) else dict(item)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return _fmt_time(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _compact(value, 40)


async def _schedules_list(rt: Runtime, args: argparse.Namespace) -> None:
    items = await rt.list_schedules()
    rows = [_as_dict(i) for i in items]
    if args.json:
        _out(_dump_json([{k: _to_json_value(v) for k, v in r.items()} for r in rows]))
        return
    if not rows:
        _out("no schedules")
        return
    headers: list[str] = []
    for r in rows:
        headers += [k for k in r if k not in headers]
    body = [[_cell(r.get(h)) for h in headers] for r in rows]
    _out(_table([h.upper() for h in headers], body))


async def _schedules_pause(rt: Runtime, args: argparse.Namespace) -> None:
    await rt.pause_schedule(args.name)
    _out(f"schedule {args.name!r} paused")


async def _schedules_resume(rt: Runtime, args: argparse.Namespace) -> None:
    await rt.resume_schedule(args.name)
    _out(f"schedule {args.name!r} resumed")


async def _queues_list(rt: Runtime, args: argparse.Namespace) -> None:
    from durable.cli_queues import render_queues

    _out(render_queues(await rt.list_queues(), as_json=args.json))


async def _migrate(rt: Runtime, args: argparse.Namespace) -> None:
    # Entering the Runtime applied them.
    _out(f"migrations applied (schema {rt.schema!r})")


# -- worker ----------------------------------------------------------------------------


def _worker_runtime(app: App, args: argparse.Namespace) -> tuple[Runtime, str]:
    cli_dsn = _cli_dsn(args)
    base = app.runtime
    if base is None:
        dsn = _require_dsn(cli_dsn)
        schema = args.schema or DEFAULT_SCHEMA
        rt = Runtime(
            dsn,
            schema=schema,
            workflows=app.workflows,
            concurrency=args.concurrency or 1000,
            worker=True,
        )
        return rt, dsn
    own_dsn: str | None = getattr(base, "_dsn", None)
    dsn = _require_dsn(cli_dsn or own_dsn)
    # The app's runtime settings, with the command line's overrides on top.
    config = msgspec.structs.replace(
        base.config,
        schema=args.schema or base.schema,
        concurrency=args.concurrency or base.concurrency,
        worker=True,
    )
    rt = Runtime.from_config(
        config,
        dsn,
        workflows=app.workflows,
        clock=base.clock,
        context_provider=base.context_provider,
    )
    return rt, dsn


async def _serve(rt: Runtime, dsn: str) -> str | None:
    """Run the worker until SIGTERM/SIGINT; returns the signal's name (None if none came)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []
    main_task = asyncio.current_task()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("second %s: stopping without waiting for in-flight runs", sig.name)
            if main_task is not None:
                main_task.cancel()
            return
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # e.g. Windows; Ctrl-C still interrupts
            pass
    try:
        async with _opened(rt, dsn):
            names = ", ".join(f"{d.name}@{d.version}" for d in rt.registry.all())
            log.info(
                "worker started: %d workflow(s) [%s], concurrency=%d, schema=%s, database=%s",
                len(rt.registry.all()),
                names,
                rt.concurrency,
                rt.schema,
                redact_dsn(dsn),
            )
            await stop.wait()
            log.info("received %s: stopping, releasing in-flight runs", received[0])
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("worker stopped")
    return received[0] if received else None


def _cmd_worker_reload(args: argparse.Namespace) -> int:
    """`worker APP --reload`: supervise a `worker APP` child (see durable/reload.py)."""
    from durable import reload

    try:
        return reload.run_worker(args.app, args.dsn, args.schema, args.log_level, args.concurrency)
    except LookupError as exc:
        raise CliError(f"--reload: {exc}", EXIT_USAGE) from None


def _cmd_worker(args: argparse.Namespace) -> int:
    _setup_logging(getattr(logging, args.log_level))
    schemas = cli_schemas.requested(args)
    if len(schemas) == 1:
        args.schema = schemas[0]
    if args.reload and len(schemas) < 2:
        return _cmd_worker_reload(args)
    env_dsn = _cli_dsn(args)
    if env_dsn:
        _remember_secrets(env_dsn)
    app = load_app(args.app)
    if len(schemas) > 1:  # one process serving several schemas: durable/cli_schemas.py
        return cli_schemas.run(app, args, schemas)
    rt, dsn = _worker_runtime(app, args)
    _remember_secrets(dsn)
    try:
        run_loop(_serve(rt, dsn))  # on uvloop when installed
    except asyncio.CancelledError:
        return EXIT_INTERRUPTED
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    """`serve` lives in durable.http (it needs the `server` extra: starlette, uvicorn)."""
    try:
        from durable.http.serve import cmd_serve
    except ImportError as exc:
        raise CliError(f'durable serve needs: pip install "durable-pg[server]" ({exc})') from None
    return cmd_serve(args)


# -- entry point -----------------------------------------------------------------------


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"{PROG}: error: {_one_line(message)}\n")
    sys.stderr.flush()
    return code


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DurableError | ConnectionError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return f"database error: {type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):
        # A run's timeout says what it waits for; a bare one is the database's.
        return str(exc) or "timed out waiting for PostgreSQL to answer"
    return f"{type(exc).__name__}: {exc}"


def _exit_quietly_on_broken_pipe() -> int:
    # `durable runs list | head`: stop writing, and let Python's final flush go nowhere.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `durable` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(_protect_hook_token(list(sys.argv[1:] if argv is None else argv)))
    if args.command not in ("worker", "serve"):
        _setup_logging(logging.WARNING)
    try:
        if args.command in ("signal", "trigger", "hook"):
            args.payload_value = _json_payload(args.payload)
        handler: Callable[[argparse.Namespace], int] = args.handler
        code = handler(args)
        sys.stdout.flush()
        return code
    except CliError as exc:
        return _fail(exc.message, exc.code)
    except BrokenPipeError:
        return _exit_quietly_on_broken_pipe()
    except (
        DurableError,
        ConnectionError,
        OSError,
        TimeoutError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        return _fail(_describe(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception:
        # A bug, not an expected failure: show the traceback, without secrets.
        sys.stderr.write(_scrub("".join(traceback.format_exc())))
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
