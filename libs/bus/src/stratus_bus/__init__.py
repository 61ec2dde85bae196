"""The typed NATS bus: request/reply with typed errors, queue-group endpoints, trace propagation."""

from stratus_bus.bus import (
    Bus,
    DomainError,
    RemoteError,
    Replayed,
    ServiceTimeout,
    ServiceUnavailable,
    note_replays,
    replayed,
)

__all__ = [
    "Bus",
    "DomainError",
    "RemoteError",
    "Replayed",
    "ServiceTimeout",
    "ServiceUnavailable",
    "note_replays",
    "replayed",
]
