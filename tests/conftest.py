"""Shared fixtures: one real PostgreSQL per test session, one fresh schema per test.

The DSN is resolved once per session, in this order:

1. ``$DURABLE_TEST_DSN`` when set (nothing is probed: a wrong value should fail loudly);
2. ``postgresql://postgres@127.0.0.1:5432/postgres`` when a connection succeeds
   within ~2 s (CI and the development machines run such a server);
3. a throwaway server from :mod:`durable.embedded` in a temporary directory, stopped
   and deleted at the end of the session.

Each test isolates itself with its own schema (``schema`` fixture) instead of its
own database, which keeps setup to a name and teardown to one ``DROP SCHEMA``.

Behavioural tests run on both stores: ``store_dsn`` is parametrized over the session's
PostgreSQL (``[postgres]``) and ``memory://`` (``[memory]``), and ``backend`` builds
runtimes on it. On memory, the runtimes of one test share one MemoryStore (as they
share one schema on Postgres), so restarts keep their data. Tests that need PostgreSQL
itself -- raw SQL through ``db``, subprocesses -- are skipped on memory: ``db`` skips
by itself, and ``@pytest.mark.postgres_only`` marks the others.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from durable import Runtime, WorkflowDef
from durable.store import MEMORY_URL, Store, store_for
from durable.store.memory import MemoryStore
from durable.store.postgres import PostgresStore

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

# tests/citus need a running Citus cluster (`make test-citus` starts one and sets the
# variable): without it, that folder is not collected at all.
collect_ignore = [] if os.environ.get("DURABLE_CITUS_DSN") else ["citus"]
PROBE_TIMEOUT_S = 2.0


async def _can_connect(dsn: str, timeout: float) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except Exception:  # refused, timed out, auth failed...: any failure means "no"
        return False
    await conn.close()
    return True


def _probe(dsn: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    # A private thread and loop: session fixtures are set up outside any test loop,
    # and this keeps pytest-asyncio's own loops untouched.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _can_connect(dsn, timeout)).result()


def _reachable_tmpdir(prefix: str) -> Path:
    """A temporary directory that an unprivileged server user can traverse.

    pytest's own tmp dirs are mode 0700 under /tmp/pytest-of-root, which the
    ``postgres`` user cannot enter when the suite runs as root.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of the PostgreSQL server the whole session uses (see module docstring)."""
    explicit = os.environ.get("DURABLE_TEST_DSN")
    if explicit:
        yield explicit
        return
    if _probe(LOCAL_DSN):
        yield LOCAL_DSN
        return

    from durable import embedded

    try:
        embedded.find_bindir()
    except embedded.EmbeddedPostgresError as exc:
        pytest.fail(f"no test database: {LOCAL_DSN} is unreachable and {exc}")
    base = _reachable_tmpdir("durable-test-pg-")
    data_dir = base / "pg"
    try:
        yield embedded.ensure_server(data_dir)
    finally:
        embedded.stop_server(data_dir)
        shutil.rmtree(embedded.resolve_data_dir(data_dir), ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def dsn(pg_dsn: str) -> str:
    """Alias of ``pg_dsn``."""
    return pg_dsn


@pytest.fixture
async def schema(pg_dsn: str) -> AsyncIterator[str]:
    """A schema name unique to this test, dropped (with everything in it) afterwards.

    The schema is not created here: ``Runtime(schema=...)`` and the store's
    migrations create it, which is part of what the tests exercise.
    """
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgres_only: needs PostgreSQL itself (subprocesses, SQL): skipped on the memory store",
    )


def _on_memory(request: pytest.FixtureRequest) -> bool:
    callspec = getattr(request.node, "callspec", None)
    return callspec is not None and callspec.params.get("store_dsn") == "memory"


@pytest.fixture(params=["postgres", "memory"])
def store_dsn(request: pytest.FixtureRequest) -> str:
    """Where the test's runtimes keep their data: the session's PostgreSQL DSN (tables in
    the test's ``schema``) or ``memory://``."""
    if request.param == "memory":
        if request.node.get_closest_marker("postgres_only") is not None:
            pytest.skip("needs PostgreSQL itself (subprocesses or SQL)")
        return MEMORY_URL
    return str(request.getfixturevalue("dsn"))


class Backend:
    """Builds the test's runtimes on its store (see the module docstring)."""

    def __init__(self, dsn: str, schema: str | None) -> None:
        self.dsn = dsn
        self.schema = schema
        self.memory: MemoryStore | None = MemoryStore() if dsn == MEMORY_URL else None

    @property
    def is_memory(self) -> bool:
        return self.memory is not None

    def runtime(self, *workflows: WorkflowDef, **options: Any) -> Runtime:
        if self.memory is not None:
            options.pop("schema", None)
            return Runtime(store=self.memory, workflows=list(workflows), **options)
        options.setdefault("schema", self.schema)
        return Runtime(self.dsn, workflows=list(workflows), **options)


@pytest.fixture
def backend(store_dsn: str, request: pytest.FixtureRequest) -> Backend:
    if store_dsn == MEMORY_URL:
        return Backend(store_dsn, None)
    return Backend(store_dsn, str(request.getfixturevalue("schema")))


@pytest.fixture
async def db(
    request: pytest.FixtureRequest, dsn: str, schema: str
) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection on the test's schema, for checking what was (not) written.

    Skips the test on the memory store: there is no SQL to check there.
    """
    if _on_memory(request):
        pytest.skip("checks PostgreSQL tables with raw SQL")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def pg_store(dsn: str, schema: str) -> AsyncIterator[PostgresStore]:
    """A migrated PostgresStore on the test's schema (a pool of 2), closed afterwards."""
    s = PostgresStore(dsn, schema=schema, pool_size=2)
    await s.open()
    try:
        await s.migrate()
        yield s
    finally:
        await s.close()


@pytest.fixture
async def backend_store(backend: Backend) -> AsyncIterator[Store]:
    """The test's store, migrated, on both backends (the ``backend`` parameter)."""
    s = backend.memory or store_for(backend.dsn, schema=backend.schema, pool_size=2)
    await s.open()
    try:
        await s.migrate()
        yield s
    finally:
        await s.close()
