"""What identity's aggregate families share: the event base that records the actor, and the
validation helper their decisions use."""

from __future__ import annotations

from collections.abc import Iterable

from eventsourcing.utils import register_topic

from stratus_contracts.errors import DomainError, FieldError
from stratus_contracts.events import Actor
from stratus_eventstore.model import DomainEvent

MAX_NAME = 100


class IdentityEvent(DomainEvent, frozen=True, kw_only=True):
    """An event that records who caused it (None: an operator command or the system)."""

    actor: Actor | None = None


def invalid(errors: list[FieldError]) -> DomainError:
    return DomainError("validation_failed", "; ".join(f"{e.field}: {e.message}" for e in errors), errors)


def moved(classes: Iterable[type]) -> None:
    """Events recorded when identity's domain was one module keep resolving to their classes."""
    for cls in classes:
        register_topic(f"stratus_identity.domain:{cls.__name__}", cls)


register_topic("stratus_identity.domain:IdentityEvent", IdentityEvent)
