"""`durable runs export` and `durable replay`: recorded runs out, and checked against code.

Kept beside the replay code they drive (durable/cli.py only registers them), so the
CLI module stays one screenful per concern.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from durable.cli import (
    _cli_dsn,
    _client,
    _positive_int,
    _remember_secrets,
    _require_dsn,
)
from durable.cli_app import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    load_app,
)
from durable.cli_format import out as _out
from durable.errors import ValidationError
from durable.runtime import RunStatus, Runtime
from durable.testing.replay import Misfit, Recorded, check_recorded, load_document, load_file


def add_commands(sub: Any, runs_sub: Any) -> None:
    """Register `runs export` under `runs`, and `replay`, on the CLI's parsers."""
    p = runs_sub.add_parser(
        "export", help="write a run (info and full history) as JSON, for `durable replay`"
    )
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--out", metavar="FILE", default=None, help="write to FILE (default: stdout)")
    p.set_defaults(handler=_client(_runs_export, read_only=True))

    p = sub.add_parser(
        "replay",
        help="check recorded runs against the workflow code in APP (exit 1 on a misfit)",
    )
    p.add_argument("app", metavar="APP", help="`module` or `module:attr` holding the workflows")
    p.add_argument("files", metavar="FILE", nargs="*", help="files written by `runs export`")
    p.add_argument("--workflow", default=None, help="check the newest stored runs of W instead")
    p.add_argument(
        "--status", default=None, choices=[s.value for s in RunStatus], help="with --workflow"
    )
    p.add_argument(
        "--limit", type=_positive_int, default=100, help="with --workflow: newest N (100)"
    )
    p.set_defaults(handler=_cmd_replay)


async def _runs_export(rt: Runtime, args: argparse.Namespace) -> None:
    text = json.dumps(await rt.export_run(args.run_id), indent=1) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return
    await asyncio.to_thread(Path(args.out).write_text, text)
    _out(f"run {args.run_id} exported to {args.out}")


def _report(count: int, misfits: list[Misfit]) -> int:
    for m in misfits:
        _out(f"MISFIT {m.line()}")
    _out(f"{count} run(s) checked, {len(misfits)} misfit(s)")
    return EXIT_FAILURE if misfits else EXIT_OK


def _cmd_replay(args: argparse.Namespace) -> int:
    if bool(args.files) == bool(args.workflow):
        raise CliError("give either FILE... or --workflow W", EXIT_USAGE)
    if (args.status is not None or args.limit != 100) and not args.workflow:
        raise CliError("--status and --limit go with --workflow", EXIT_USAGE)
    defs = load_app(args.app).workflows
    if args.files:
        runs: list[tuple[str, Recorded]] = []
        for name in args.files:
            try:
                runs.append((name, load_file(name)))
            except OSError as exc:
                raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None
            except ValidationError as exc:
                raise CliError(str(exc)) from None
        count, misfits = asyncio.run(check_recorded(defs, runs))
        return _report(count, misfits)

    dsn = _require_dsn(_cli_dsn(args))
    _remember_secrets(dsn)

    async def stored() -> tuple[int, list[Misfit]]:
        from durable.cli import DEFAULT_SCHEMA, _opened

        rt = Runtime(
            dsn, schema=args.schema or DEFAULT_SCHEMA, worker=False, listen=False, pool_size=2
        )
        rt.migrate_on_start = False  # read-only: an unknown schema is an error, not created
        async with _opened(rt, dsn):
            infos = await rt.list_runs(workflow=args.workflow, status=args.status, limit=args.limit)
            docs = [("db", load_document(await rt.export_run(i.run_id))) for i in infos]
        return await check_recorded(defs, docs)

    count, misfits = asyncio.run(stored())
    return _report(count, misfits)
