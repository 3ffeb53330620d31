"""Encoding of every stored payload: msgspec MessagePack behind a one-byte codec tag.

The tag lets a later release add or change codecs while still reading old rows.
"""

from __future__ import annotations

from typing import Any

import msgspec

from durable.errors import SerializationError

MSGPACK = b"M"

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()
_NONE = MSGPACK + _encoder.encode(None)


def label(what: str, name: str | None) -> str:
    """`what`, followed by `name` quoted when given: "result of step 'charge'".

    The hot paths pass the two parts and this is only called to build an error, so a
    step does not format a message it will almost never show.
    """
    return what if name is None else f"{what} {name!r}"


def encode(value: Any, *, what: str = "value", name: str | None = None) -> bytes:
    """Encode `value`; raise SerializationError naming `what` (and `name`) when msgspec
    cannot."""
    try:
        return MSGPACK + _encoder.encode(value)
    except RecursionError:
        # Too deeply nested: the same value fails the same way every time, so this is a
        # SerializationError (never retried), not a crash of whatever encodes it.
        raise SerializationError(
            f"{label(what, name)} cannot be encoded: {type(value).__name__} is nested too deeply"
        ) from None
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise SerializationError(
            f"{label(what, name)} cannot be encoded: {type(value).__name__} is not supported"
            f" by msgspec ({exc})"
        ) from exc


def decode(data: bytes | None) -> Any:
    """Decode a stored payload; None stands for 'no payload'."""
    if data is None:
        return None
    tag = data[:1]
    if tag == MSGPACK:
        return _decoder.decode(data[1:])
    raise SerializationError(f"unknown codec tag {tag!r} in stored payload")


def roundtrip(value: Any, *, what: str = "value", name: str | None = None) -> tuple[bytes, Any]:
    """Encode then decode, so live values equal what a replay will later return."""
    if value is None:  # steps run for their effect return None: nothing to convert
        return _NONE, None
    data = encode(value, what=what, name=name)
    try:
        return data, _decoder.decode(memoryview(data)[1:])
    except RecursionError:
        raise SerializationError(
            f"{label(what, name)} cannot be decoded: it is nested too deeply"
        ) from None
