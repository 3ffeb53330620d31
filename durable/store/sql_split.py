"""Split a migration file into its SQL statements, so each is sent on its own.

Why: Citus with schema-based sharding propagates every DDL statement separately and
refuses a multi-statement string (`cannot insert multiple commands into a prepared
statement`); plain PostgreSQL accepts both. Neither asyncpg nor PostgreSQL exposes a
splitter, so this is a small lexer over exactly the syntax that can hide a `;`:

- `-- line comments` and `/* block comments */` (which nest in PostgreSQL);
- `'string'` literals (`''` escapes a quote), `E'...'` literals (`\\'` escapes too);
- `"quoted identifiers"` (`""` escapes a quote);
- dollar-quoted bodies: `$$ ... $$` and `$tag$ ... $tag$` (plpgsql functions, DO blocks).

Comments are kept inside the statement that follows them (PostgreSQL ignores them);
statements that are only comments or whitespace are dropped.
"""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def split_sql(text: str) -> list[str]:
    """The statements of `text`, each without its terminating `;`, in order."""
    out: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif c == "/" and text.startswith("/*", i):
            i = _skip_block_comment(text, i)
        elif c == "'":
            escapes = i > 0 and text[i - 1] in "eE" and not _ident_char(text, i - 2)
            i = _skip_quoted(text, i, "'", backslash=escapes)
        elif c == '"':
            i = _skip_quoted(text, i, '"', backslash=False)
        elif c == "$" and not _ident_char(text, i - 1):
            m = _DOLLAR_TAG.match(text, i)
            if m is None:  # a positional parameter such as $1
                i += 1
                continue
            end = text.find(m.group(0), m.end())
            if end < 0:
                raise ValueError(f"unterminated dollar-quoted string starting at offset {i}")
            i = end + len(m.group(0))
        elif c == ";":
            _keep(out, text[start:i])
            i += 1
            start = i
        else:
            i += 1
    _keep(out, text[start:])
    return out


def _ident_char(text: str, i: int) -> bool:
    return i >= 0 and (text[i].isalnum() or text[i] == "_")


def _skip_block_comment(text: str, i: int) -> int:
    depth = 0
    n = len(text)
    while i < n:
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise ValueError("unterminated block comment")


def _skip_quoted(text: str, i: int, quote: str, *, backslash: bool) -> int:
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if backslash and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and text[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    raise ValueError(f"unterminated {quote}-quoted text")


def _keep(out: list[str], statement: str) -> None:
    if _has_code(statement):
        out.append(statement.strip())


def _has_code(statement: str) -> bool:
    """True unless `statement` is only whitespace and comments."""
    i = 0
    n = len(statement)
    while i < n:
        if statement[i].isspace():
            i += 1
        elif statement.startswith("--", i):
            nl = statement.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif statement.startswith("/*", i):
            i = _skip_block_comment(statement, i)
        else:
            return True
    return False
