"""Opaque list cursors, one format for every list: base64url of a JSON array `[tag, *parts]`.

The tag names the list (and, where it matters, the sort order), so a cursor from one list is
refused by another with `invalid_cursor` instead of silently paging from the wrong place.
"""

from __future__ import annotations

import base64

import msgspec

from stratus_contracts.errors import DomainError


def encode(tag: str, *parts: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([tag, *parts])).decode().rstrip("=")


def decode(cursor: str, tag: str, parts: int) -> list[str]:
    """The `parts` strings of a cursor made by `encode(tag, …)`; `invalid_cursor` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got, *values = msgspec.json.decode(raw, type=list[str])
    except (ValueError, msgspec.DecodeError) as exc:
        raise DomainError("invalid_cursor", "The cursor is not one this API returned.") from exc
    if got != tag or len(values) != parts:
        raise DomainError(
            "invalid_cursor", "The cursor belongs to another list or sort order; start again without it."
        )
    return values
