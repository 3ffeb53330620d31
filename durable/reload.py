"""`durable worker APP --reload`: restart the worker when the app's files change.

For development. The worker runs in a child process (`python -m durable worker APP`
without `--reload`); this supervisor watches the app's Python files with `watchfiles`
and, on a change, stops the child with SIGTERM, which is the worker's graceful
shutdown (in-flight runs are released, so nothing is lost), then starts a new child
on the new code. Runs that were in flight resume there from their history, as after
any restart. Needs the optional `watchfiles` package (`durable-pg[reload]`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

log = logging.getLogger("durable.reload")

STOP_TIMEOUT_S = 60.0
"""How long a stopping worker may take (its shutdown_grace included) before SIGKILL."""


def app_paths(app: str) -> list[Path]:
    """The directories holding APP's code, found without importing (executing) it.

    A package is watched whole (its top-level package, so sibling modules count);
    a single-module app is watched through its directory (its local imports too).
    Raises LookupError when the module cannot be found.
    """
    module = app.partition(":")[0]
    top = module.split(".")[0]
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # as `durable worker` itself imports apps
    spec = importlib.util.find_spec(top) if top else None
    if spec is None:
        raise LookupError(f"cannot find app module {module!r}")
    if spec.submodule_search_locations:
        return [Path(p).resolve() for p in spec.submodule_search_locations]
    if spec.origin is None or not os.path.isfile(spec.origin):
        raise LookupError(f"app module {module!r} has no source file to watch")
    return [Path(spec.origin).resolve().parent]


class _Supervisor:
    def __init__(self, child_argv: Sequence[str], paths: Sequence[Path]) -> None:
        self.child_argv = [sys.executable, "-m", "durable", *child_argv]
        self.paths = list(paths)
        self.stop = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop.set()

    def start_child(self) -> None:
        # Its own process group: a Ctrl-C in the terminal reaches only this supervisor,
        # which forwards one SIGTERM (a second signal would cut the graceful shutdown).
        self.child = subprocess.Popen(self.child_argv, process_group=0)
        log.info("reload: worker process %d started", self.child.pid)

    def stop_child(self) -> int | None:
        child = self.child
        self.child = None
        if child is None:
            return None
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("reload: worker %d did not stop in time; killing it", child.pid)
                child.kill()
                child.wait()
        return child.returncode

    def run(self) -> int:
        import watchfiles  # optional: run_worker checked it is installed

        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            log.info("reload: watching %s", ", ".join(str(p) for p in self.paths))
            self.start_child()
            reported_exit = False
            for changes in watchfiles.watch(
                *self.paths,
                watch_filter=watchfiles.PythonFilter(),
                debounce=400,
                stop_event=self.stop,
                rust_timeout=500,
                yield_on_timeout=True,
                raise_interrupt=False,
            ):
                if not changes:
                    child = self.child
                    if child is not None and child.poll() is not None and not reported_exit:
                        log.warning(
                            "reload: worker exited with code %d; restarting when a file changes",
                            child.returncode,
                        )
                        reported_exit = True
                    continue
                names = sorted({os.path.basename(path) for _, path in changes})
                log.info("reload: %s changed: restarting the worker", ", ".join(names))
                self.stop_child()
                self.start_child()
                reported_exit = False
        finally:
            code = self.stop_child()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("reload: stopped")
        return 0 if code in (None, 0) else code


def supervise(child_argv: Sequence[str], paths: Sequence[Path]) -> int:
    """Run `durable *child_argv` in a child process until SIGTERM/SIGINT, restarting it
    whenever a Python file under `paths` changes; returns the last child's exit code."""
    return _Supervisor(child_argv, paths).run()


def run_worker(
    app: str, dsn: str | None, schema: str | None, log_level: str, concurrency: int | None
) -> int:
    """`durable [--dsn D] [--schema S] worker APP --reload` (the CLI's options as given).

    The DSN goes to the child through $DURABLE_DSN, not its command line. Raises
    LookupError (nothing started) when watchfiles is missing or APP cannot be found.
    """
    if importlib.util.find_spec("watchfiles") is None:
        raise LookupError("needs the watchfiles package: pip install 'durable-pg[reload]'")
    paths = app_paths(app)
    if dsn:
        os.environ["DURABLE_DSN"] = dsn
    child = ["--schema", schema] if schema else []
    child += ["worker", app, "--log-level", log_level]
    if concurrency:
        child += ["--concurrency", str(concurrency)]
    return supervise(child, paths)


__all__ = ["STOP_TIMEOUT_S", "app_paths", "run_worker", "supervise"]
