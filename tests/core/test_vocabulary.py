"""The SQL side speaks the vocabulary of durable/core/vocabulary.py, and nothing else.

Every string literal in the migrations and in the SQL the stores send must be a run
status, a notice or a wake-key prefix defined there, or one of the few other literals
listed below. A status misspelt in SQL (or renamed in Python only) fails here instead
of leaving runs unclaimable in production.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from durable.core import vocabulary as v

STORE = Path(v.__file__).resolve().parents[1] / "store"
MIGRATIONS = sorted((STORE / "migrations").glob("*.sql"))
STORE_MODULES = sorted(STORE.glob("*.py"))

STATUSES = {s.value for s in v.RunStatus}
NOTICES = {v.NOTICE_WAKE, v.NOTICE_DONE_PREFIX, v.NOTICE_CANCELLED_PREFIX}
WAKE_PREFIXES = {v.SIGNAL_PREFIX, v.HOOK_PREFIX, v.CHILD_PREFIX}
# Literals that are not part of the engine's vocabulary: empty values, the outcomes
# durable_commit reports to PostgresStore; schedule idempotency keys (`schedule:...`) are
# matched by prefix.
OTHER = {"", "{}", "closed", "rejected", "woken"}
# Migration 0009's date arithmetic (the day bound of run ids) and the catalog names it
# passes to pg_get_serial_sequence: SQL constants, not durable vocabulary.
OTHER |= {"day", "UTC", "1 day", "0", "id", "run_events", "run_events_legacy"}

_SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER)\b")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_DOLLAR_QUOTE = re.compile(r"\$\$")


def sql_literals(sql: str) -> list[str]:
    """Single-quoted literals of a SQL text (comments dropped, '' unescaped)."""
    text = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    text = _DOLLAR_QUOTE.sub(" ", text)
    return [m.group(1).replace("''", "'") for m in _LITERAL.finditer(text)]


def python_sql(path: Path) -> list[str]:
    """The SQL strings of a store module: string constants that contain SQL keywords."""
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                p.value
                for p in node.values
                if isinstance(p, ast.Constant) and isinstance(p.value, str)
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if _SQL_WORDS.search(text):
            out.append(text)
    return out


def sources() -> list[tuple[str, str]]:
    found = [(p.name, p.read_text()) for p in MIGRATIONS]
    for path in STORE_MODULES:
        found += [(path.name, sql) for sql in python_sql(path)]
    return found


def test_the_scan_finds_the_sql() -> None:
    names = {name for name, _ in sources()}
    assert {"0001_init.sql", "0003_commit_function.sql", "0004_wake_parents.sql"} <= names
    assert {"postgres.py", "pg_schedules.py"} <= names
    literals = {lit for _, sql in sources() for lit in sql_literals(sql)}
    # The scan sees the literals that matter (if it saw none, the test below proves nothing).
    assert {"pending", "suspended", "running", "completed", "w", "d:", "c:"} <= literals


@pytest.mark.parametrize(
    ("name", "sql"), sources(), ids=lambda x: x[:40] if isinstance(x, str) else x
)
def test_every_sql_literal_is_vocabulary(name: str, sql: str) -> None:
    allowed = STATUSES | NOTICES | WAKE_PREFIXES | OTHER
    unknown = [
        lit for lit in sql_literals(sql) if lit not in allowed and not lit.startswith("schedule:")
    ]
    assert unknown == [], f"{name}: literals outside durable.core.vocabulary: {unknown}"


def test_notice_separator_matches_sql() -> None:
    # durable_commit joins finished run ids with chr(31) into one notice.
    assert chr(31) == v.NOTICE_ID_SEPARATOR
    commit = (STORE / "migrations" / "0004_wake_parents.sql").read_text()
    assert "'d:' || array_to_string(" in commit and "chr(31)" in commit
    kind, ids = v.parse_notice(v.NOTICE_DONE_PREFIX + chr(31).join(["a", "b"]))
    assert (kind, ids) == (v.Notice.DONE, ["a", "b"])


def test_literal_extraction() -> None:
    assert sql_literals("SELECT 'a', 'it''s' -- 'comment'\n, $$ 'b' $$") == ["a", "it's", "b"]
