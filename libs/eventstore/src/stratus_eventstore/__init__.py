"""Event store plumbing shared by every service: msgspec events in `eventsourcing`, one store per
service and partition, the outbox relay to JetStream, and local SQLite read models."""

from stratus_eventstore.model import DomainEvent, event_uuid
from stratus_eventstore.store import Store, open_store

__all__ = ["DomainEvent", "Store", "event_uuid", "open_store"]
