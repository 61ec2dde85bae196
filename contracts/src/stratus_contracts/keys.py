"""API key format: `sk_live_…` / `sk_test_…`. Generation, parsing and the hash that is stored."""

from __future__ import annotations

import hashlib
import re
import secrets

from stratus_contracts.events import Mode

KEY_PATTERN = re.compile(r"^sk_(live|test)_([A-Za-z0-9_-]{24,200})$")


def generate(mode: Mode) -> str:
    """A new key with 256 bits of entropy after the prefix."""
    return f"sk_{mode}_{secrets.token_urlsafe(32)}"


def mode_of(secret: str) -> Mode | None:
    """The key's mode, or None when the value is not a well-formed key."""
    match = KEY_PATTERN.match(secret)
    return match.group(1) if match else None  # type: ignore[return-value]


def hash_secret(secret: str) -> str:
    # Keys are 256-bit random, so a fast hash is enough: there is nothing to brute-force.
    return hash_secret_bytes(secret.encode())


def hash_secret_bytes(secret: bytes) -> str:
    """`hash_secret` of a key as it arrives (ASCII bytes), without decoding it first."""
    return hashlib.sha256(secret).hexdigest()


def hint(secret: str) -> str:
    """A non-secret reminder of which key this is: the prefix and the last four characters."""
    return f"{secret[:8]}…{secret[-4:]}"
