"""Keeping DSN passwords out of logs and error messages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """The DSN without its password (URL or keyword form), fit for logs."""
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
            netloc = parts.netloc
            if "@" in netloc:
                creds, host = netloc.rsplit("@", 1)
                user = creds.split(":", 1)[0]
                netloc = f"{user}@{host}" if user else host
            query = QUERY_PASSWORD.sub(r"\1***", "?" + parts.query)[1:] if parts.query else ""
            return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        except ValueError:
            return "<unparseable DSN>"
    return KEYWORD_PASSWORD.sub(r"\1***", dsn)
