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


def encode(value: Any, *, what: str = "value") -> bytes:
    """Encode `value`; raise SerializationError naming `what` when msgspec cannot."""
    try:
        return MSGPACK + _encoder.encode(value)
    except RecursionError:
        # Too deeply nested: the same value fails the same way every time, so this is a
        # SerializationError (never retried), not a crash of whatever encodes it.
        raise SerializationError(
            f"{what} cannot be encoded: {type(value).__name__} is nested too deeply"
        ) from None
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise SerializationError(
            f"{what} cannot be encoded: {type(value).__name__} is not supported by msgspec ({exc})"
        ) from exc


def decode(data: bytes | None) -> Any:
    """Decode a stored payload; None stands for 'no payload'."""
    if data is None:
        return None
    tag = data[:1]
    if tag == MSGPACK:
        return _decoder.decode(data[1:])
    raise SerializationError(f"unknown codec tag {tag!r} in stored payload")


def roundtrip(value: Any, *, what: str = "value") -> tuple[bytes, Any]:
    """Encode then decode, so live values equal what a replay will later return."""
    data = encode(value, what=what)
    try:
        return data, _decoder.decode(data[1:])
    except RecursionError:
        raise SerializationError(f"{what} cannot be decoded: it is nested too deeply") from None
