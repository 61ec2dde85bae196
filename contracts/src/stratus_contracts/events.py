"""The public event envelope published to the JetStream stream `EVENTS` (see API.md, Events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

Mode = Literal["live", "test"]


class Actor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who caused an event (for audit): the acting key, member, token, client IP and request.
    Domain events record it; public events carry it."""

    key_id: str | None = None
    member_id: str | None = None
    token_id: str | None = None
    ip: str | None = None
    request_id: str | None = None


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["event"] = "event"
    type: str
    created: datetime
    mode: Mode
    account: str
    data: dict[str, Any]
    actor: Actor | None = None
