"""The database schema name: its rule, and every identifier derived from it (one home).

Why a rule rather than quoting: the schema name becomes an identifier in several places
-- `CREATE SCHEMA`, each connection's `search_path`, the LISTEN/NOTIFY channel
(`channel_for`) -- and PostgreSQL treats them differently. Unquoted identifiers are
folded to lower case (`search_path = Foo` means schema `foo`, while `CREATE SCHEMA
"Foo"` makes `Foo`), `LISTEN` truncates a name over 63 bytes with only a notice, and
`pg_notify` refuses it (`channel name too long`). A schema named `Foo` therefore failed
alone and, next to a `foo`, silently shared `foo`'s tables while notifying on another
channel; a 60-character name migrated fine and then failed every trigger. Restricting
the name so that its quoted and unquoted forms are the same identifier, and the channel
fits in 63 bytes, makes every use agree without quoting each one correctly.

The rule is checked at the edge -- `RuntimeConfig` (so every `Runtime`, on any store),
`PostgresStore`, the CLI's `--schema`/`--schemas` -- before anything is created.
"""

from __future__ import annotations

import re

from durable.errors import ValidationError

#: PostgreSQL's longest identifier in bytes (NAMEDATALEN - 1); channel names included.
MAX_IDENTIFIER_BYTES = 63

#: The LISTEN/NOTIFY channel of a schema is this prefix plus the schema name.
CHANNEL_PREFIX = "durable_"

#: Longest schema name: the derived channel name must fit in an identifier.
MAX_SCHEMA_LENGTH = MAX_IDENTIFIER_BYTES - len(CHANNEL_PREFIX)

_RULE = re.compile(r"[a-z_][a-z0-9_]*")

RULE_TEXT = (
    f"use lower-case letters (a-z), digits and underscores, not starting with a digit or"
    f" 'pg_', at most {MAX_SCHEMA_LENGTH} characters (the NOTIFY channel"
    f" '{CHANNEL_PREFIX}<schema>' must fit in {MAX_IDENTIFIER_BYTES} bytes)"
)


def check_schema(name: object) -> str:
    """Return `name` if it is a schema name durable can use everywhere, else raise
    ValidationError naming the rule. ASCII only, so characters and bytes agree."""
    if not isinstance(name, str):
        raise ValidationError(f"invalid schema name {name!r}: {RULE_TEXT}")
    if (
        not _RULE.fullmatch(name)
        or len(name) > MAX_SCHEMA_LENGTH
        or name.startswith("pg_")  # reserved by PostgreSQL for system schemas
    ):
        shown = name if len(name) <= 80 else name[:80] + "..."
        length = f" ({len(name)} characters)" if len(name) > MAX_SCHEMA_LENGTH else ""
        raise ValidationError(f"invalid schema name {shown!r}{length}: {RULE_TEXT}")
    return name


def channel_for(schema: str) -> str:
    """The LISTEN/NOTIFY channel of one schema, so several deployments share a database.

    `schema` must have passed `check_schema`: the result is then a valid identifier of
    at most 63 bytes, the same quoted or not."""
    return CHANNEL_PREFIX + schema


def quoted(schema: str) -> str:
    """The schema as a quoted SQL identifier, for DDL (`CREATE SCHEMA`, `DROP SCHEMA`)."""
    return '"' + check_schema(schema) + '"'
