"""durable/store/sql_split.py: migrations are sent one statement at a time (Citus)."""

from __future__ import annotations

from importlib import resources

import pytest

from durable.store.sql_split import split_sql


def test_plain_statements_and_trailing_text() -> None:
    assert split_sql("SELECT 1; SELECT 2;\n\n") == ["SELECT 1", "SELECT 2"]
    assert split_sql("SELECT 1") == ["SELECT 1"]
    assert split_sql("  ;; -- only a comment;\n /* and another; */ ") == []


def test_semicolons_inside_literals_comments_and_bodies_do_not_split() -> None:
    sql = (
        "SELECT 'a;b', 'it''s;';\n"
        "SELECT E'x\\';y';\n"
        'SELECT "odd;""name" FROM t;\n'
        "-- a comment; with a semicolon\n"
        "SELECT 1 /* outer /* nested; */ still; */ + 1;\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;\n"
        "DO $body$ BEGIN PERFORM 'x;$$'; END $body$;\n"
        "SELECT $1::int, a$b FROM t"
    )
    parts = split_sql(sql)
    assert len(parts) == 7
    assert parts[0] == "SELECT 'a;b', 'it''s;'"
    assert parts[1] == "SELECT E'x\\';y'"
    assert parts[2] == 'SELECT "odd;""name" FROM t'
    assert parts[3].endswith("SELECT 1 /* outer /* nested; */ still; */ + 1")
    assert parts[4].endswith("END; $$")
    assert parts[5] == "DO $body$ BEGIN PERFORM 'x;$$'; END $body$"
    assert parts[6] == "SELECT $1::int, a$b FROM t"


@pytest.mark.parametrize("bad", ["SELECT 'open", "SELECT $$ open", "/* open", 'SELECT "open'])
def test_unterminated_text_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unterminated"):
        split_sql(bad)


def test_every_migration_splits_into_whole_statements() -> None:
    """Each piece of each shipped migration starts with a statement keyword."""
    files = [
        f for f in resources.files("durable.store.migrations").iterdir() if f.name.endswith(".sql")
    ]
    assert files
    for f in files:
        for part in split_sql(f.read_text()):
            code = "\n".join(
                line for line in part.splitlines() if not line.lstrip().startswith("--")
            )
            first = code.split(None, 1)[0].upper()
            assert first in {
                "CREATE",
                "ALTER",
                "DROP",
                "DO",
                "INSERT",
                "UPDATE",
                "WITH",
                "SELECT",
            }, (
                f.name,
                part[:80],
            )
