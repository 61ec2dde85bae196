"""The base of every domain event: a frozen msgspec Struct that `eventsourcing` can store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

_NAMESPACE = uuid.UUID("6f0c1c9e-55a4-4d57-9a3c-7d0e4b3c2a10")


def utcnow() -> datetime:
    return datetime.now(UTC)


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True):
    originator_id: uuid.UUID
    originator_version: int
    timestamp: datetime = msgspec.field(default_factory=utcnow)


def event_uuid(originator_id: uuid.UUID | str, version: int) -> uuid.UUID:
    """A stable id for the event at (aggregate, version): re-publishing it yields the same id."""
    return uuid.uuid5(_NAMESPACE, f"{originator_id}:{version}")


def index_uuid(*parts: str) -> uuid.UUID:
    """A deterministic aggregate id for an index entry (e.g. a unique name within an account)."""
    return uuid.uuid5(_NAMESPACE, "\x1f".join(parts))
