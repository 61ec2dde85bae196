"""The event store every service writes to: msgspec domain events in `eventsourcing`, one store per
service and partition (SQLite or PostgreSQL by configuration), and snapshots of long aggregates."""

from stratus_eventstore.model import DomainEvent, event_uuid, index_uuid, utcnow
from stratus_eventstore.store import Store, open_store

__all__ = ["DomainEvent", "Store", "event_uuid", "index_uuid", "open_store", "utcnow"]
