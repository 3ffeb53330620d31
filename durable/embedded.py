"""Start or reuse a throwaway local PostgreSQL server and hand back its DSN.

This owns the "no DSN given" path: ``Runtime()`` without a DSN, ``make db-up`` and
the test suite's fallback all end here. The module uses only the standard library,
so it works before any other part of ``durable`` can, and it never talks SQL: it
runs ``initdb``/``pg_ctl`` and reads ``postmaster.pid``.

Where data lives: ``$DURABLE_DATA_DIR``, else ``$XDG_DATA_HOME/durable/pg``, else
``~/.local/share/durable/pg`` (see :func:`default_data_dir`). The directory *is* the
cluster's ``PGDATA``. Every start and every reuse logs the real location.

Binaries: ``$DURABLE_PG_BINDIR``, then the system's (``pg_config --bindir``, the
newest ``/usr/lib/postgresql/*/bin``, ``initdb`` on ``PATH``), then those bundled with
the ``pgserver`` package (``pip install "durable-pg[embedded]"``).

Root: ``initdb`` and ``postgres`` refuse to run as root, which is what many
containers are. As root, the server runs as an unprivileged user (``$DURABLE_PG_USER``,
else the owner of an existing cluster, else ``postgres``, else ``nobody``), and when
that user cannot reach the data directory (``/root`` is mode 0700) the data moves to
a per-requested-path directory under ``/var/tmp/durable-pg-<uid>/``.

Announcement: starting a server (not reusing one) leaves a process behind, so it is
announced in one line on the ``durable.embedded`` logger at INFO: the DSN, where the
data lives, that it keeps running, how to stop it. When the application has
configured no logging at all, that line goes to stderr instead, so that nobody gets
a background server without being told.

Security: the server trusts every local connection (unix socket and 127.0.0.1). It
is a development and test convenience, not a production deployment.

Command line: ``python -m durable.embedded start|stop|status [--data-dir DIR]``
prints the DSN on stdout and logs to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EmbeddedPostgresError",
    "default_data_dir",
    "ensure_server",
    "find_bindir",
    "main",
    "resolve_data_dir",
    "server_status",
    "stop_server",
]

log = logging.getLogger("durable.embedded")

#: Role created by ``initdb -U``; fixed so the DSN does not depend on the OS user.
SUPERUSER = "postgres"
DATABASE = "postgres"

_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
_STATE_FILE = "durable-embedded.json"
_LOG_FILE = "postgres.log"
_TIMEOUT_S = 60
# A unix socket path must fit sun_path (108 bytes) together with "/.s.PGSQL.NNNNN".
_MAX_SOCKET_DIR_LEN = 80
_SAFE_PATH = re.compile(r"^[A-Za-z0-9/._-]+$")

_INSTALL_HINT = (
    "no PostgreSQL server binaries (initdb, pg_ctl, postgres) were found. Install them "
    'with `pip install "durable-pg[embedded]"` (bundled binaries from the pgserver '
    "package) or from your system's packages (e.g. `apt-get install postgresql`, "
    "`brew install postgresql`), set DURABLE_PG_BINDIR to their directory, or pass "
    "a DSN / set DURABLE_DSN to use an existing server."
)


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be found, started or stopped."""


@dataclass(frozen=True)
class _RunAs:
    """An unprivileged account that runs the server when we are root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @classmethod
    def from_pwd(cls, entry: pwd.struct_passwd) -> _RunAs:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


@dataclass(frozen=True)
class _PidFile:
    """The parts of ``postmaster.pid`` we need (its layout is stable since PG 10)."""

    pid: int
    port: int
    socket_dir: str
    listen: str
    status: str


# --------------------------------------------------------------------------- paths


def default_data_dir() -> Path:
    """Return where the embedded cluster lives unless told otherwise.

    ``$DURABLE_DATA_DIR``, else ``$XDG_DATA_HOME/durable/pg``, else
    ``~/.local/share/durable/pg`` — the same rule the public API documents.
    """
    explicit = os.environ.get("DURABLE_DATA_DIR")
    if explicit:
        return _absolute(Path(explicit))
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return _absolute(Path(xdg) / "durable" / "pg")
    return _absolute(Path.home() / ".local" / "share" / "durable" / "pg")


def resolve_data_dir(data_dir: Path | None = None) -> Path:
    """Return the directory that really holds the cluster for ``data_dir``.

    It differs from the requested one only when running as root and the server's
    user cannot reach the requested directory (see the module docstring).
    """
    return _plan(_requested(data_dir))[0]


def _requested(data_dir: Path | None) -> Path:
    return _absolute(data_dir) if data_dir is not None else default_data_dir()


def _absolute(path: Path) -> Path:
    # Not resolve(): keep the user's spelling (symlinks included) in logs and hashes.
    return Path(os.path.abspath(path.expanduser()))


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _plan(requested: Path) -> tuple[Path, _RunAs | None]:
    """Decide where the data lives and which account runs the server.

    Pure (creates nothing), so ``stop`` and ``status`` arrive at the same answer as
    the ``start`` that created the cluster.
    """
    if not _is_root():
        return requested, None
    user = _pick_user(requested)
    if _user_can_reach(requested, user):
        return requested, user
    fallback = _fallback_dir(requested)
    return fallback, _pick_user(fallback)


def _pick_user(data_dir: Path) -> _RunAs:
    override = os.environ.get("DURABLE_PG_USER")
    if override:
        try:
            return _RunAs.from_pwd(pwd.getpwnam(override))
        except KeyError:
            raise EmbeddedPostgresError(f"DURABLE_PG_USER={override!r} is not a user") from None
    # An existing cluster must keep running as the account that owns its files.
    with contextlib.suppress(OSError, KeyError):
        owner = (data_dir / "PG_VERSION").stat().st_uid
        if owner != 0:
            return _RunAs.from_pwd(pwd.getpwuid(owner))
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return _RunAs.from_pwd(pwd.getpwnam(name))
    raise EmbeddedPostgresError(
        "running as root, and PostgreSQL refuses to run as root; no unprivileged "
        "user ('postgres' or 'nobody') exists to run it. Create one, or set "
        "DURABLE_PG_USER to an existing user."
    )


def _user_can_reach(path: Path, user: _RunAs) -> bool:
    """Whether ``user`` may traverse every existing ancestor of ``path``.

    Ancestors that do not exist yet are created by us world-searchable (0755).
    ACLs are ignored: mode bits are what nearly every container relies on.
    """
    for ancestor in reversed(path.parents):
        try:
            st = ancestor.stat()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        if not _may_search(st, user):
            return False
    return True


def _may_search(st: os.stat_result, user: _RunAs) -> bool:
    if st.st_uid == user.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in user.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _fallback_root() -> Path:
    # /var/tmp survives reboots where /tmp may be a tmpfs; data here should persist.
    base = Path("/var/tmp")
    if not base.is_dir():
        base = Path(tempfile.gettempdir())
    return base / f"durable-pg-{os.geteuid()}"


def _fallback_dir(requested: Path) -> Path:
    # One directory per requested path, so distinct data dirs stay distinct clusters.
    digest = hashlib.sha256(str(requested).encode()).hexdigest()[:12]
    return _fallback_root() / f"{requested.name or 'pg'}-{digest}"


def _make_private_dir(path: Path, owner: int, mode: int) -> None:
    """Create ``path`` (or accept it) only if it is a real directory owned by ``owner``.

    Guards shared places like /tmp, where another user could have planted a
    directory or symlink of the same name beforehand.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=mode)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != owner:
        raise EmbeddedPostgresError(
            f"{path} exists but is not a directory owned by uid {owner}; remove it or "
            "choose another data directory (DURABLE_DATA_DIR)"
        )
    os.chmod(path, mode)


def _create_parents(target: Path, requested: Path, user: _RunAs | None) -> None:
    """Create the data directory's missing parents with workable permissions."""
    if target != requested:
        _make_private_dir(target.parent, os.geteuid(), 0o711)
    elif user is None:
        target.parent.mkdir(parents=True, exist_ok=True)
    else:
        for ancestor in reversed(target.parents):
            if not ancestor.exists():
                with contextlib.suppress(FileExistsError):
                    ancestor.mkdir()
                    # So the server's user can traverse what we, root, just made.
                    ancestor.chmod(0o755)


def _create_data_dir(target: Path, user: _RunAs | None) -> None:
    """Create an empty data directory owned by the server's user (under the lock)."""
    target.mkdir(mode=0o700, exist_ok=True)
    if (target / "PG_VERSION").exists():
        return
    if any(target.iterdir()):
        raise EmbeddedPostgresError(
            f"{target} is not empty and is not a PostgreSQL data directory; "
            "refusing to initialise a cluster there"
        )
    if user is not None:
        os.chown(target, user.uid, user.gid)
    target.chmod(0o700)


def _socket_dir(target: Path, user: _RunAs | None) -> Path:
    """Pick a directory for the unix socket whose path is short enough to bind."""
    if len(str(target)) <= _MAX_SOCKET_DIR_LEN and _SAFE_PATH.match(str(target)):
        return target
    digest = hashlib.sha256(str(target).encode()).hexdigest()[:10]
    path = Path(tempfile.gettempdir()) / f"durable-s-{digest}"
    owner = user.uid if user is not None else os.geteuid()
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
        if user is not None:
            os.chown(path, user.uid, user.gid)
    _make_private_dir(path, owner, 0o700)
    return path


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Serialise start/stop of one cluster across processes (best effort)."""
    lock_path = target.parent / f".{target.name}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield  # unwritable parent: proceed unlocked rather than fail
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------------------------ binaries


def find_bindir() -> Path:
    """Return a directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    System binaries come first because they match the machine's libraries and are
    usually newer; the ``pgserver`` wheel is the portable fallback.

    Raises:
        EmbeddedPostgresError: nothing usable was found; the message says how to
            install it.
    """
    override = os.environ.get("DURABLE_PG_BINDIR")
    if override:
        if _has_binaries(Path(override)):
            return Path(override)
        raise EmbeddedPostgresError(
            f"DURABLE_PG_BINDIR={override!r} lacks one of {', '.join(_REQUIRED_BINARIES)}"
        )
    for candidate in _candidate_bindirs():
        if _has_binaries(candidate):
            return candidate
    raise EmbeddedPostgresError(_INSTALL_HINT)


def _candidate_bindirs() -> Iterator[Path]:
    pg_config = shutil.which("pg_config")
    if pg_config:
        # On Debian, pg_config may come from libpq-dev without a server: checked later.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                yield Path(out)
    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        yield Path(initdb).resolve().parent
    bundled = _pgserver_bindir()
    if bundled is not None:
        yield bundled


def _version_key(bindir: Path) -> tuple[int, ...]:
    parts = bindir.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)


def _pgserver_bindir() -> Path | None:
    # find_spec, not import: pgserver's import pulls in psutil and friends we don't need.
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bindir = Path(location) / "pginstall" / "bin"
        if bindir.is_dir():
            return bindir
    return None


def _has_binaries(bindir: Path) -> bool:
    return all(
        (bindir / name).is_file() and os.access(bindir / name, os.X_OK)
        for name in _REQUIRED_BINARIES
    )


# ------------------------------------------------------------------------ processes


def _child_env(user: _RunAs | None) -> dict[str, str]:
    # Drop PG* variables (PGDATA, PGPORT, PGOPTIONS...) so nothing overrides our flags.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    if user is not None:
        env["HOME"] = user.home
        env["USER"] = env["LOGNAME"] = user.name
    return env


def _run(
    argv: Sequence[str | Path], user: _RunAs | None, timeout: float = 2 * _TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool, as ``user`` when given (we are root then).

    A new session keeps Ctrl-C aimed at the caller from reaching the postmaster
    that ``pg_ctl start`` leaves behind.
    """
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env=_child_env(user),
        cwd="/",
        timeout=timeout,
        start_new_session=True,
        check=False,
        user=user.uid if user is not None else None,
        group=user.gid if user is not None else None,
        extra_groups=list(user.groups) if user is not None else None,
    )


def _check_runnable(bindir: Path, user: _RunAs | None) -> None:
    if user is not None and not _user_can_reach(bindir / "postgres", user):
        raise EmbeddedPostgresError(
            f"the PostgreSQL binaries in {bindir} are not reachable by user {user.name!r}, "
            "which must run the server because PostgreSQL refuses root. Install a "
            "system PostgreSQL (e.g. `apt-get install postgresql`) or set "
            "DURABLE_PG_BINDIR to binaries that user can execute."
        )


def _read_pidfile(target: Path) -> _PidFile | None:
    try:
        lines = (target / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise EmbeddedPostgresError(f"cannot read {target / 'postmaster.pid'}: {exc}") from exc
    try:
        pid = int(lines[0])
        port = int(lines[3])
    except (IndexError, ValueError):
        return None  # being written right now, or garbage: treat as absent
    field = lines + [""] * 8
    # Before PG 10 there was no status line; a live postmaster then counts as ready.
    status = field[7].strip() or "ready"
    return _PidFile(pid, port, field[4].strip(), field[5].strip(), status)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def _running(target: Path, wait: bool = True) -> _PidFile | None:
    """Return the live, ready postmaster of ``target``, or None if none runs.

    A postmaster that is starting up or shutting down is waited for, so a
    concurrent start or stop is never mistaken for a usable or a dead server.
    """
    deadline = time.monotonic() + _TIMEOUT_S
    while True:
        info = _read_pidfile(target)
        if info is None or not _pid_alive(info.pid):
            return None
        if info.status in ("ready", "standby"):
            return info
        if not wait or time.monotonic() > deadline:
            raise EmbeddedPostgresError(
                f"the server for {target} (pid {info.pid}) is stuck {info.status!r}; "
                f"see {target / _LOG_FILE}"
            )
        time.sleep(0.1)


def _dsn(info: _PidFile) -> str:
    if info.listen:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{info.port}/{DATABASE}"
    # Started by hand without TCP: fall back to the unix socket.
    return f"postgresql://{SUPERUSER}@/{DATABASE}?host={info.socket_dir}&port={info.port}"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the postmaster sets, so TIME_WAIT leftovers don't look busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _saved_port(target: Path) -> int | None:
    try:
        data = json.loads((target / _STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    port = data.get("port") if isinstance(data, dict) else None
    return port if isinstance(port, int) and 0 < port < 65536 else None


def _save_port(target: Path, port: int) -> None:
    # Reusing the same port across restarts keeps DSNs that people copied valid.
    tmp = target / f".{_STATE_FILE}.tmp"
    tmp.write_text(json.dumps({"port": port}) + "\n")
    tmp.replace(target / _STATE_FILE)


def _log_tail(target: Path, lines: int = 20) -> str:
    try:
        text = (target / _LOG_FILE).read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


def _initdb(bindir: Path, target: Path, user: _RunAs | None) -> None:
    log.info("initialising a new PostgreSQL cluster in %s", target)
    result = _run(
        [
            bindir / "initdb",
            "-D",
            target,
            "-U",
            SUPERUSER,
            "--auth=trust",  # throwaway local server: no passwords to manage
            "--encoding=UTF8",
            "--locale=C",  # exists everywhere; byte order sorting is fine for us
        ],
        user,
    )
    if result.returncode != 0:
        raise EmbeddedPostgresError(
            f"initdb failed for {target} (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}".rstrip()
        )


def _start(bindir: Path, target: Path, user: _RunAs | None) -> _PidFile:
    sock_dir = _socket_dir(target, user)
    saved = _saved_port(target)
    port = saved if saved is not None and _port_free(saved) else _free_port()
    attempts = 3
    for attempt in range(1, attempts + 1):
        options = shlex.join(
            [
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sock_dir}",
                "-c",
                "max_connections=200",  # tests open several pools at once
            ]
        )
        result = _run(
            [
                bindir / "pg_ctl",
                "start",
                "-D",
                target,
                "-l",
                target / _LOG_FILE,
                "-w",
                "-t",
                str(_TIMEOUT_S),
                "-s",
                "-o",
                options,
            ],
            user,
        )
        if result.returncode == 0:
            break
        # Another program may have taken the port between our check and the bind.
        if attempt < attempts and not _port_free(port):
            port = _free_port()
            continue
        raise EmbeddedPostgresError(
            f"could not start PostgreSQL in {target} (pg_ctl exit {result.returncode}): "
            f"{(result.stdout + result.stderr).strip()}\n"
            f"last lines of {target / _LOG_FILE}:\n{_log_tail(target)}"
        )
    _save_port(target, port)
    info = _running(target)
    if info is None:
        raise EmbeddedPostgresError(
            f"PostgreSQL in {target} exited right after starting:\n{_log_tail(target)}"
        )
    return info


# ------------------------------------------------------------------------- public


def ensure_server(data_dir: Path | None = None) -> str:
    """Return the DSN of a PostgreSQL server running on ``data_dir``, starting it if needed.

    An already running server is reused (found through ``postmaster.pid``), so
    calling this from several processes or repeatedly is cheap and safe. A missing
    cluster is created with ``initdb`` (trust auth, fsync on). The server listens
    on 127.0.0.1 at a free port (remembered in the data directory for restarts)
    and on a unix socket, and outlives this process: stop it with
    :func:`stop_server` or ``python -m durable.embedded stop``.

    Args:
        data_dir: the cluster's directory; :func:`default_data_dir` when None.

    Returns:
        A DSN such as ``postgresql://postgres@127.0.0.1:54321/postgres``.

    Raises:
        EmbeddedPostgresError: no binaries, an unusable directory, or a failed start.
    """
    requested = _requested(data_dir)
    target, user = _plan(requested)
    if target != requested:
        log.info(
            "%s is not reachable by user %r, who runs PostgreSQL because it refuses "
            "root; keeping the data in %s instead",
            requested,
            user.name if user else "?",
            target,
        )
    _create_parents(target, requested, user)
    with _locked(target):
        info = _running(target)
        if info is not None:
            dsn = _dsn(info)
            log.info("reusing PostgreSQL at %s (pid %d, data in %s)", dsn, info.pid, target)
            return dsn
        bindir = find_bindir()
        _check_runnable(bindir, user)
        if not (target / "PG_VERSION").exists():
            _create_data_dir(target, user)
            _initdb(bindir, target, user)
        info = _start(bindir, target, user)
        dsn = _dsn(info)
        log.debug(
            "PostgreSQL binaries from %s, socket in %s%s",
            bindir,
            info.socket_dir,
            f", running as {user.name}" if user else "",
        )
        _announce(_start_message(dsn, target, requested))
        return dsn


def _start_message(dsn: str, data: Path, requested: Path) -> str:
    """The one line that tells whoever started the server what they now have running."""
    stop = "python -m durable.embedded stop"
    if requested != default_data_dir():
        stop += f" --data-dir {shlex.quote(str(requested))}"
    return (
        f"started PostgreSQL at {dsn} with its data in {data}; it keeps running after "
        f"this process exits (stop it with `{stop}`)"
    )


def _announce(message: str) -> None:
    if log.hasHandlers():
        log.info("%s", message)
    else:
        # No logging configured: the INFO line would vanish (logging's last resort
        # shows WARNING and up only), yet a server now runs in the background.
        print(f"durable.embedded: {message}", file=sys.stderr, flush=True)


def stop_server(data_dir: Path | None = None) -> bool:
    """Stop the server running on ``data_dir`` (fast shutdown); keep its data.

    Returns:
        True if a server was running and has stopped, False if none was running.

    Raises:
        EmbeddedPostgresError: the server is running but would not stop.
    """
    target, user = _plan(_requested(data_dir))
    if not (target / "PG_VERSION").exists():
        return False
    with _locked(target):
        info = _running(target)
        if info is None:
            return False
        bindir = find_bindir()
        result = _run(
            [bindir / "pg_ctl", "stop", "-D", target, "-m", "fast", "-w", "-t", str(_TIMEOUT_S)],
            user,
        )
        if result.returncode != 0:
            if _running(target, wait=False) is None:
                return False  # it went away by itself meanwhile
            raise EmbeddedPostgresError(
                f"could not stop PostgreSQL in {target}: {(result.stdout + result.stderr).strip()}"
            )
    log.info("stopped PostgreSQL (pid %d); data kept in %s", info.pid, target)
    return True


def server_status(data_dir: Path | None = None) -> str | None:
    """Return the DSN of the server running on ``data_dir``, or None if none runs."""
    target, _ = _plan(_requested(data_dir))
    info = _running(target)
    return _dsn(info) if info is not None else None


# ---------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m durable.embedded start|stop|status [--data-dir DIR]``.

    ``start`` and ``status`` print the DSN on stdout, so
    ``export DURABLE_DSN=$(python -m durable.embedded start)`` works. ``status``
    exits 3 when no server runs (as ``pg_ctl status`` does).
    """
    parser = argparse.ArgumentParser(
        prog="python -m durable.embedded",
        description="Start, stop or inspect the throwaway local PostgreSQL used by durable.",
    )
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="cluster directory (default: $DURABLE_DATA_DIR, $XDG_DATA_HOME/durable/pg "
        "or ~/.local/share/durable/pg)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="durable.embedded: %(message)s")
    data_dir: Path | None = args.data_dir
    try:
        if args.command == "start":
            print(ensure_server(data_dir))
            return 0
        if args.command == "stop":
            if not stop_server(data_dir):
                log.info("no server running (data dir %s)", resolve_data_dir(data_dir))
            return 0
        dsn = server_status(data_dir)
        if dsn is None:
            log.info("not running (data dir %s)", resolve_data_dir(data_dir))
            return 3
        print(dsn)
        log.info("running; data in %s", resolve_data_dir(data_dir))
        return 0
    except EmbeddedPostgresError as exc:
        print(f"durable.embedded: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
