"""Master keys (key-encryption keys for environment variables): their text form and public id.

Shared by the projects service (which wraps data keys with them) and the `stratus` command (which
generates the dev stack's key and names the key a rotation expects). Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

MASTER_KEY_ENV = "STRATUS_MASTER_KEY"
PREVIOUS_KEYS_ENV = "STRATUS_MASTER_KEY_PREVIOUS"  # comma-separated; they unwrap, never wrap
KEY_BYTES = 32


class MasterKeyError(ValueError):
    """A master key is not base64 of 32 bytes."""


def parse(text: str, name: str = MASTER_KEY_ENV) -> bytes:
    """The 32 bytes behind a base64 master key (standard or URL-safe alphabet, padding optional)."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MasterKeyError(f"{name} is not base64") from exc
    if len(raw) != KEY_BYTES:
        raise MasterKeyError(f"{name} must be base64 of {KEY_BYTES} random bytes (got {len(raw)} bytes)")
    return raw


def generate() -> str:
    """A new master key in the form `STRATUS_MASTER_KEY` takes."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> str:
    """A master key's public id (`kek_…`): a one-way digest of it, so no configuration names ids."""
    return "kek_" + hashlib.sha256(b"stratus kek id\x00" + key).hexdigest()[:16]
