"""The typed NATS bus: request/reply with typed errors, non-blocking endpoints, trace propagation."""

from stratus_bus.bus import (
    Bus,
    DomainError,
    Envelope,
    RemoteError,
    Replayed,
    ServiceTimeout,
    ServiceUnavailable,
    error_reply,
    kv_create,
    kv_get_written,
    note_replays,
    replayed,
    reply_to,
)

__all__ = [
    "Bus",
    "DomainError",
    "Envelope",
    "RemoteError",
    "Replayed",
    "ServiceTimeout",
    "ServiceUnavailable",
    "error_reply",
    "kv_create",
    "kv_get_written",
    "note_replays",
    "replayed",
    "reply_to",
]
