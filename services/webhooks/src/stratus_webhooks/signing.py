"""Standard Webhooks signatures: secrets, signing, the delivery headers, and verification.

The scheme (standardwebhooks.com, spec 1.0): the signed content is `{msg_id}.{timestamp}.{body}`,
the signature `v1,<base64 HMAC-SHA256>` under a secret `whsec_<base64 of 24–64 random bytes>`;
`webhook-signature` lists one signature per live secret, space-separated, so a receiver holding
either the old or the new secret verifies during a rotation's grace period.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from stratus_contracts.webhooks import MAX_SECRET_BYTES, MIN_SECRET_BYTES, SECRET_PREFIX, new_secret

__all__ = ["InvalidSignature", "headers", "new_secret", "secret_key", "sign", "verify"]
DEFAULT_TOLERANCE = 300  # seconds; the reference libraries' replay window


class InvalidSignature(Exception):
    """A request whose headers, timestamp or signatures do not verify."""


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_` secret; `ValueError` if it is not one of ours."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("a signing secret is whsec_ followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a signing secret holds {MIN_SECRET_BYTES}–{MAX_SECRET_BYTES} bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">` under `secret`."""
    _check_metadata(msg_id, timestamp)
    # The body is signed as the exact bytes sent; re-serialising JSON here would break receivers.
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The signature headers of one delivery attempt, signed with every live secret.

    `secrets` lists the endpoint's live secrets, newest first; the order of signatures follows it.
    `X-Signature` repeats `webhook-signature` for receivers that look for that name (issue #11).
    """
    if isinstance(secrets, str):
        # A bare string is a Sequence of one-character "secrets": refuse the easy mistake.
        raise TypeError("secrets is a sequence of secrets, not one secret")
    live = list(dict.fromkeys(secrets))
    if not live:
        raise ValueError("a delivery is signed with at least one secret")
    signature = " ".join(sign(secret, msg_id, timestamp, body) for secret in live)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "X-Signature": signature,
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Raise `InvalidSignature` unless one `v1` signature in `headers` is `secret`'s for `body`.

    The receiver's side (for our own tests and the SDK): the timestamp must be within `tolerance`
    seconds of `now` either way, which is what stops a captured request from being replayed.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and raw_timestamp and signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit():
        raise InvalidSignature("webhook-timestamp is not an integer")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is outside the tolerance")
    try:
        expected = sign(secret, msg_id, timestamp, body).encode()
    except ValueError as exc:
        raise InvalidSignature(str(exc)) from None
    # Compare every candidate without stopping early on a match's position, in constant time each.
    matched = False
    for candidate in signatures.split(" "):
        if candidate.startswith("v1,"):
            matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise InvalidSignature("no matching signature")


def _check_metadata(msg_id: str, timestamp: int) -> None:
    # The spec: the id must not contain '.', or "{id}.{ts}" stops being unambiguous; it also goes
    # into a header, so it is printable ASCII without spaces.
    if not msg_id or "." in msg_id or not msg_id.isascii() or not msg_id.isprintable() or " " in msg_id:
        raise ValueError("a message id is non-empty printable ASCII without '.' or spaces")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("a timestamp is a non-negative integer of Unix seconds")
