"""`durable serve APP`: the HTTP API and dashboard over a worker runtime, on uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import ipaddress
import logging
import os
import signal
from collections.abc import Iterator

import msgspec
import uvicorn
from starlette.applications import Starlette

from durable.http.app import create_app
from durable.loop import run as run_loop
from durable.redact import redact_dsn
from durable.runtime import Runtime

log = logging.getLogger("durable.http")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    """uvicorn's server without its signal capture: `serve` handles SIGINT/SIGTERM so the
    runtime shuts down cleanly (uvicorn would re-raise the signal after stopping)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_parser() -> str:
    """httptools (C, part of the `server` extra) when installed, else h11, uvicorn's
    pure-Python fallback, which costs several times more CPU per request."""
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def uvicorn_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for `durable serve` (docs/http.md, "Performance").

    No access log: uvicorn would build a log record per request, and the API's
    answers are not worth a line each. The event loop is the one `serve` runs on
    (durable.loop: uvloop when installed), not one uvicorn would pick.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_parser(),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )


async def serve(rt: Runtime, dsn: str, host: str, port: int, token: str | None) -> None:
    """Open the runtime, serve until SIGINT/SIGTERM, then stop the server and the runtime."""
    from durable.cli import _opened

    loop = asyncio.get_running_loop()
    async with _opened(rt, dsn):
        app = create_app(rt, token=token)
        config = uvicorn_config(app, host, port)
        server = _Server(config)

        def stop() -> None:
            app.state.durable_api.live.close()
            server.should_exit = True

        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop)
                installed.append(sig)
        log.info(
            "serving http://%s:%d/ (API and dashboard)%s%s, database=%s, http=%s, loop=%s",
            host,
            port,
            " with bearer token" if token else "",
            "" if rt.worker else " without a worker",
            redact_dsn(dsn),
            config.http,
            type(loop).__module__.split(".")[0],
        )
        try:
            await server.serve()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
    log.info("server stopped")


def cmd_serve(args: argparse.Namespace) -> int:
    from durable import cli, cli_app

    cli._setup_logging(getattr(logging, args.log_level))
    token = os.environ.get("DURABLE_API_TOKEN") or None
    if not is_loopback(args.host) and token is None:
        raise cli_app.CliError(
            f"refusing to serve on non-loopback host {args.host!r} without a token:"
            " set DURABLE_API_TOKEN",
            cli_app.EXIT_USAGE,
        )
    env_dsn = cli._cli_dsn(args)
    if env_dsn:
        cli._remember_secrets(env_dsn)
    app = cli_app.load_app(args.app)
    rt, dsn = cli._worker_runtime(app, args)
    if args.no_worker:
        # The API alone: runs are executed by `durable worker APP` processes, whose event
        # loops then never queue behind HTTP requests (nor these behind steps).
        rt = Runtime.from_config(
            msgspec.structs.replace(rt.config, worker=False),
            dsn,
            workflows=app.workflows,
            clock=rt.clock,
            context_provider=rt.context_provider,
        )
    cli._remember_secrets(dsn)
    run_loop(serve(rt, dsn, args.host, args.port, token))  # on uvloop when installed
    return cli_app.EXIT_OK
