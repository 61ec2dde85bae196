"""The public event envelope published to the JetStream stream `EVENTS` (see API.md, Events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

Mode = Literal["live", "test"]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["event"] = "event"
    type: str
    created: datetime
    mode: Mode
    account: str
    data: dict[str, Any]
