"""`durable serve APP`: the HTTP API and dashboard over a worker runtime, on uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import ipaddress
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

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


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT: each `--processes` process binds its own on
    the same port, and the kernel spreads new connections over them by a hash of the
    client address (an even share, where one shared socket lets the first process to
    wake take a burst of connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets whose protocol says TCP (with 0, each answer's second write waited for the
    # client's delayed ACK: 40 ms per request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    rt: Runtime,
    dsn: str,
    host: str,
    port: int,
    token: str | None,
    sock: socket.socket | None = None,
) -> None:
    """Open the runtime, serve until SIGINT/SIGTERM, then stop the server and the runtime
    (on `sock` when given: one of several `--processes`)."""
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
            await server.serve(sockets=None if sock is None else [sock])
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
    if args.processes > 1:
        return supervise(args, token)
    run_loop(serve(*_runtime(args), args.host, args.port, token))  # on uvloop when installed
    return cli_app.EXIT_OK


def _runtime(args: argparse.Namespace) -> tuple[Runtime, str]:
    """The runtime `serve` opens: APP's workflows, with a worker unless `--no-worker`."""
    from durable import cli, cli_app

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
    return rt, dsn


def _one_process(args: argparse.Namespace, token: str | None, index: int) -> None:
    """One of `supervise`'s processes: a whole `durable serve` on its own socket."""
    from durable import cli

    cli._setup_logging(getattr(logging, args.log_level))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides (SIGTERM)
    try:
        sock = reuse_port_socket(args.host, args.port)
        log.info("process %d of %d (pid %d)", index + 1, args.processes, os.getpid())
        run_loop(serve(*_runtime(args), args.host, args.port, token, sock))
    except Exception as exc:  # one line, secrets scrubbed, as the command itself reports
        log.error("serving process %d failed: %s", index + 1, cli._describe(exc))
        raise SystemExit(1) from None


def supervise(args: argparse.Namespace, token: str | None) -> int:
    """`durable serve --processes N`: N serving processes on one port (SO_REUSEPORT).

    One Python process answers on one core; past ~2,000 requests/s (docs/benchmarks.md)
    more processes answer more. Each is a whole `serve` (its own runtime, pool and, without
    `--no-worker`, worker). SIGINT/SIGTERM stop them all; if one exits on its own, the
    others are stopped and the command fails, for the service manager to restart it.
    """
    from durable import cli_app

    cli_app.load_app(args.app)  # a broken APP fails here, in one line, not N times
    with reuse_port_socket(args.host, args.port):
        pass  # the port is free (and allows SO_REUSEPORT): fail here, once, if not
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked loop or pool
    procs = [
        ctx.Process(target=_one_process, args=(args, token, i), name=f"durable-serve-{i + 1}")
        for i in range(args.processes)
    ]
    stopping = False
    failed: list[Any] = []

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for p in procs:
            p.start()
        while not stopping and all(p.is_alive() for p in procs):
            multiprocessing.connection.wait([p.sentinel for p in procs], timeout=0.5)
        failed = [p for p in procs if not p.is_alive() and p.exitcode != 0]
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the process stops its server and runtime
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():  # pragma: no cover - a process stuck in shutdown
                p.kill()
                p.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed or not stopping:
        ended = ", ".join(f"{p.name} exit code {p.exitcode}" for p in failed or procs)
        log.error("a serving process ended (%s): stopped the others", ended)
        return cli_app.EXIT_FAILURE
    log.info("server stopped (%d processes)", len(procs))
    return cli_app.EXIT_OK
