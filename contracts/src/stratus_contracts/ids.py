"""Prefixed, random, URL-safe identifiers (`prj_…`) and their mapping to the event store's UUIDs."""

from __future__ import annotations

import base64
import functools
import random
import uuid

PREFIXES = frozenset({"acct", "prj", "env", "dep", "whk", "evt", "dlv", "key", "req", "mem"})
_ALPHABET_LEN = 26  # base32 of 16 bytes, padding stripped


# Both directions are pure and `base64.b32*` run in Python: a request resolves and renders the
# same few ids again and again, so recent ones are remembered.
@functools.lru_cache(maxsize=65536)
def encode_id(prefix: str, value: uuid.UUID) -> str:
    """Render an aggregate UUID as a public id such as `prj_…`."""
    text = base64.b32encode(value.bytes).decode("ascii").rstrip("=").lower()
    return f"{prefix}_{text}"


@functools.lru_cache(maxsize=65536)
def decode_id(prefix: str, public_id: str) -> uuid.UUID | None:
    """The UUID behind a public id, or None when it is not a well-formed id of that kind."""
    head, sep, body = public_id.partition("_")
    if head != prefix or not sep or len(body) != _ALPHABET_LEN:
        return None
    try:
        raw = base64.b32decode(body.upper() + "======")
    except (ValueError, base64.binascii.Error):
        return None
    return uuid.UUID(bytes=raw) if len(raw) == 16 else None


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


def new_id(prefix: str) -> str:
    """A fresh random public id of the given kind."""
    return encode_id(prefix, new_uuid())


def new_request_id() -> str:
    # Request ids correlate logs; they are not secrets, so a fast non-cryptographic source is fine.
    # (Made on every request: bytes.hex is about twice as fast as a padded format spec.)
    return "req_" + random.getrandbits(96).to_bytes(12, "big").hex()
