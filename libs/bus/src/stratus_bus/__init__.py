"""The typed NATS bus: request/reply with typed errors, queue-group endpoints, trace propagation."""

from stratus_bus.bus import Bus, DomainError, RemoteError, ServiceTimeout, ServiceUnavailable

__all__ = ["Bus", "DomainError", "RemoteError", "ServiceTimeout", "ServiceUnavailable"]
