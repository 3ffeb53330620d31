"""Run tags: the validation `trigger(tags=)`, `update_run` and the HTTP API share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable.errors import ValidationError
from durable.workflow import check_name

MAX_TAG_KEY = 128
MAX_TAG_VALUE = 1024


def check_tags(tags: Any, *, removals: bool = False) -> dict[str, Any]:
    """Tags are str -> str (None too when `removals`: it deletes the key). ValidationError."""
    if not isinstance(tags, Mapping):
        raise ValidationError(f"invalid tags {tags!r}: expected a dict of str to str")
    for key, value in tags.items():
        check_name(key, "tag key")
        if len(key) > MAX_TAG_KEY:
            raise ValidationError(f"invalid tag key {key[:40]!r}...: over {MAX_TAG_KEY} chars")
        if value is None and removals:
            continue
        if not isinstance(value, str) or "\x00" in value or len(value) > MAX_TAG_VALUE:
            raise ValidationError(
                f"invalid value {value!r} for tag {key!r}: must be a string without NUL"
                f" of at most {MAX_TAG_VALUE} chars"
            )
    return dict(tags)
