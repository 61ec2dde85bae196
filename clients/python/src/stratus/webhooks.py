"""Verify what Stratus POSTs to a webhook endpoint (Standard Webhooks, docs/webhooks.md).

    from stratus import webhooks

    event = webhooks.verify(request_body, request_headers, "whsec_…")   # the parsed Event

A delivery carries `webhook-id` (the event's id), `webhook-timestamp` (Unix seconds) and
`webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one
per live secret of the endpoint (two during a rotation's grace period). `verify` accepts the
delivery if any `v1` signature is the secret's, in constant time, and its timestamp is within
`tolerance` seconds of now (five minutes, as the reference libraries: a captured delivery cannot
be replayed later). Pass the raw body bytes, before any JSON parsing: re-serialised JSON does not
verify.

Implemented here rather than on the `standardwebhooks` package, whose verifier lets malformed
headers escape as `ValueError`s and decodes the body as text before checking it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

import msgspec

from stratus.errors import StratusError
from stratus.models import Event

__all__ = ["DEFAULT_TOLERANCE", "WebhookVerificationError", "sign", "verify"]

DEFAULT_TOLERANCE = 300  # seconds either way
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
_event = msgspec.json.Decoder(Event)


class WebhookVerificationError(StratusError):
    """The request is not a delivery signed with this secret, or it is too old or too new."""


def verify(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Event:
    """The event of a verified delivery; `WebhookVerificationError` otherwise.

    `headers` is any mapping of the request's headers (names in any case). `secret` is the
    endpoint's `whsec_…` secret, or several (a receiver moving to a rotated secret)."""
    body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and raw_timestamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit()):
        raise WebhookVerificationError("webhook-timestamp is not a whole number of seconds")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("webhook-timestamp is too new")

    secrets = [secret] if isinstance(secret, str) else list(secret)
    expected = [_digest(_key(s), msg_id, timestamp, body) for s in secrets]
    matched = False
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue  # a scheme this verifier does not know (the spec allows several)
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        for digest in expected:
            # No early exit on a match: every comparison runs, each in constant time.
            matched |= hmac.compare_digest(given, digest)
    if not matched:
        raise WebhookVerificationError("no signature matches the secret")
    try:
        return _event.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WebhookVerificationError(f"the signed payload is not an event: {exc}") from None


def sign(payload: bytes | str, secret: str, *, msg_id: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Stratus would send with `payload` (for testing a receiver)."""
    body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    ts = int(time.time()) if timestamp is None else timestamp
    signature = "v1," + base64.b64encode(_digest(_key(secret), msg_id, ts, body)).decode("ascii")
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def _key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_` secret (the prefix may be left out)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is `whsec_` followed by base64") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
