"""What a user gets from the package index: the wheel, its metadata, the command.

The slow test here is the issue's "done when": build the wheel, install it into a
fresh virtualenv outside the repository (dependencies come from the package index or
mirror this machine's pip is configured with, through pip's cache), and run the
README's quick start, copied out of README.md, from an unrelated directory.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import subprocess
import sys
import uuid
import venv
import zipfile
from collections.abc import AsyncIterator
from email.parser import HeaderParser
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import durable
from durable import Context, Runtime, workflow
from durable.cli import DISTRIBUTION

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PIP_TIMEOUT_S = 240
QUICKSTART_RESULT = "result: {'account': 'acct-ada', 'plan': 'pro'}"


def _pip(python: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, as `pip wheel` (hence the index's build) makes it."""
    out = tmp_path_factory.mktemp("wheel")
    built = _pip(sys.executable, "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO))
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("*.whl")
    return path


def _readme_quickstart() -> str:
    """The first Python block after the README says it is the quick start."""
    text = README.read_text()
    start = text.index("This is `examples/quickstart.py`")
    match = re.search(r"```python\n(.*?)```", text[start:], re.DOTALL)
    assert match is not None, "README.md lost its quick-start code block"
    return match[1]


# -- metadata and contents ---------------------------------------------------------------


def test_wheel_ships_code_data_license_and_metadata(wheel: Path) -> None:
    assert wheel.name == f"durable_pg-{durable.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = f"durable_pg-{durable.__version__}.dist-info"
        meta = HeaderParser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        license_text = zf.read(f"{dist_info}/licenses/LICENSE").decode()

    # Every module and every migration of the package, and the typing marker.
    package = REPO / "durable"
    expected = {
        p.relative_to(REPO).as_posix()
        for p in package.rglob("*")
        if p.is_file() and p.suffix in (".py", ".sql", ".typed")
    }
    assert any(name.endswith(".sql") for name in expected)
    assert "durable/py.typed" in expected
    assert expected <= names, expected - names
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]

    assert "Apache License" in license_text and "Version 2.0" in license_text
    assert meta["Name"] == DISTRIBUTION == "durable-pg"
    assert meta["Version"] == durable.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().strip() == README.read_text().strip()
    urls = {u.split(",")[0] for u in meta.get_all("Project-URL", [])}
    assert urls == {"Documentation", "Source", "Issues"}
    classifiers = set(meta.get_all("Classifier", []))
    assert {
        "License :: OSI Approved :: Apache Software License",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Framework :: AsyncIO",
        "Typing :: Typed",
    } <= classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert "durable = durable.cli:main" in entry_points


def test_install_lines_name_the_distribution() -> None:
    """No doc or script tells users to install the unrelated `durable` project."""
    files = [README, REPO / "Makefile", REPO / ".ci" / "run", *sorted((REPO / "docs").glob("*.md"))]
    wrong = []
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            # `pip install durable`, `"durable[embedded]"`; editable `-e '.[dev]'` is fine.
            if re.search(r"pip install (-\S+ )*['\"]?durable(\[|['\"\s]|$)|\bdurable\[", line):
                wrong.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not wrong
    assert 'pip install "durable-pg[embedded]"' in README.read_text()


def test_version_flag_prints_the_installed_version() -> None:
    expected = f"durable {importlib.metadata.version(DISTRIBUTION)}\n"
    assert expected == f"durable {durable.__version__}\n"
    for argv in (["-m", "durable", "--version"], ["-m", "durable.cli", "--version"]):
        done = subprocess.run(
            [sys.executable, *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert (done.returncode, done.stdout) == (0, expected), done.stderr


# -- DURABLE_SCHEMA ----------------------------------------------------------------------


async def _durable(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "durable",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@workflow
async def noop(ctx: Context, _: object) -> None:
    return None


async def test_durable_schema_is_the_default_of_schema_option(dsn: str, schema: str) -> None:
    async with Runtime(dsn, schema=schema, workflows=[noop], worker=False) as rt:
        await rt.trigger(noop, run_id="run-in-my-schema")
    env = {**os.environ, "DURABLE_DSN": dsn, "DURABLE_SCHEMA": schema}

    code, out, err = await _durable("runs", "show", "run-in-my-schema", env=env)
    assert code == 0, err
    assert "run-in-my-schema" in out

    # --schema still wins over the variable.
    other = f"t_{uuid.uuid4().hex[:16]}"
    try:
        code, out, _ = await _durable(
            "--schema", other, "runs", "show", "run-in-my-schema", env=env
        )
        assert (code, out) == (1, "")  # not found there (or no such schema)
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')
        finally:
            await conn.close()


# -- the quick start from the built wheel ------------------------------------------------


@pytest.fixture
async def fresh_database(pg_dsn: str) -> AsyncIterator[str]:
    """A database of its own: the quick start uses the fixed schema `durable`."""
    name = f"durable_pkg_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(pg_dsn)._replace(path=f"/{name}"))
        finally:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def fresh_venv(tmp_path: Path) -> Path:
    """An empty virtualenv (pip only) outside the repository."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    return env_dir


@pytest.mark.slow
async def test_quickstart_runs_from_the_wheel_in_a_fresh_venv(
    wheel: Path, fresh_venv: Path, fresh_database: str, tmp_path: Path
) -> None:
    python = fresh_venv / "bin" / "python"
    installed = await asyncio.to_thread(_pip, python, "install", "--quiet", str(wheel))
    assert installed.returncode == 0, installed.stdout + installed.stderr

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    script = workdir / "quickstart.py"
    script.write_text(_readme_quickstart())
    # Nothing from the checkout: no PYTHONPATH, and a cwd outside the repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DURABLE_"))}
    env["DURABLE_DSN"] = fresh_database
    env["VIRTUAL_ENV"] = str(fresh_venv)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), cwd=workdir, env=env, capture_output=True, text=True, timeout=90
        )

    where = run(str(python), "-c", "import durable; print(durable.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(fresh_venv)

    done = await asyncio.to_thread(run, str(python), str(script))
    assert done.returncode == 0, done.stdout + done.stderr
    assert QUICKSTART_RESULT in done.stdout
    assert "run_completed" in done.stdout

    version = run(str(fresh_venv / "bin" / "durable"), "--version")
    assert (version.returncode, version.stdout) == (0, f"durable {durable.__version__}\n")
    listed = run(str(fresh_venv / "bin" / "durable"), "runs", "list", "--status", "completed")
    assert listed.returncode == 0, listed.stderr
    assert "onboard" in listed.stdout
