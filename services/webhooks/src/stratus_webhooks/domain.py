"""The webhook endpoint aggregate: state, events, decisions.

Pure: no I/O, and the clock comes in as `now`. A signing secret is stored only wrapped under the
master key (`Sealed`: the master key's id and the AES-GCM box, bound to the endpoint's id); the
decisions take secrets already sealed by the handler, so no plaintext secret reaches an event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import singledispatch
from typing import Literal

import msgspec

from stratus_contracts.events import Actor
from stratus_contracts.webhooks import Status
from stratus_eventstore import preconditions
from stratus_eventstore.model import DomainEvent, index_uuid


class Sealed(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    kek: str  # the id of the master key that wrapped it
    box: bytes
    hint: str  # the secret's last four characters


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account: str
    url: str
    events: tuple[str, ...]
    project: str | None
    description: str
    status: Status
    disabled_reason: str | None
    secret: Sealed
    previous: Sealed | None
    previous_expires: datetime | None
    secret_rotated: datetime | None
    created: datetime
    updated: datetime
    deleted: bool = False


class EndpointEvent(DomainEvent, frozen=True, kw_only=True):
    actor: Actor | None = None


class EndpointCreated(EndpointEvent, frozen=True, kw_only=True):
    account: str
    url: str
    events: tuple[str, ...]
    project: str | None
    description: str
    secret: Sealed


class EndpointUpdated(EndpointEvent, frozen=True, kw_only=True):
    url: str
    events: tuple[str, ...]
    project: str | None
    description: str
    status: Status
    disabled_reason: str | None = None


class EndpointSecretRotated(EndpointEvent, frozen=True, kw_only=True):
    secret: Sealed
    previous: Sealed
    previous_expires: datetime


class EndpointDeleted(EndpointEvent, frozen=True, kw_only=True):
    pass


@singledispatch
def mutate(event: DomainEvent, state: object) -> object:
    raise NotImplementedError(type(event).__name__)


@mutate.register
def _(event: EndpointCreated, _: None) -> Endpoint:
    return Endpoint(
        id=event.originator_id,
        version=event.originator_version,
        account=event.account,
        url=event.url,
        events=event.events,
        project=event.project,
        description=event.description,
        status="enabled",
        disabled_reason=None,
        secret=event.secret,
        previous=None,
        previous_expires=None,
        secret_rotated=None,
        created=event.timestamp,
        updated=event.timestamp,
    )


@mutate.register
def _(event: EndpointUpdated, state: Endpoint) -> Endpoint:
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        updated=event.timestamp,
        url=event.url,
        events=event.events,
        project=event.project,
        description=event.description,
        status=event.status,
        disabled_reason=event.disabled_reason,
    )


@mutate.register
def _(event: EndpointSecretRotated, state: Endpoint) -> Endpoint:
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        updated=event.timestamp,
        secret=event.secret,
        previous=event.previous,
        previous_expires=event.previous_expires,
        secret_rotated=event.timestamp,
    )


@mutate.register
def _(event: EndpointDeleted, state: Endpoint) -> Endpoint:
    return msgspec.structs.replace(
        state, version=event.originator_version, updated=event.timestamp, deleted=True
    )


def apply_all(state: object, events: Iterable[DomainEvent]) -> object:
    for event in events:
        state = mutate(event, state)
    return state


def create(
    endpoint_id: uuid.UUID,
    account: str,
    url: str,
    events: tuple[str, ...],
    project: str | None,
    description: str,
    secret: Sealed,
    actor: Actor | None,
    now: datetime,
) -> list[DomainEvent]:
    return [
        EndpointCreated(
            originator_id=endpoint_id,
            originator_version=1,
            timestamp=now,
            actor=actor,
            account=account,
            url=url,
            events=events,
            project=project,
            description=description,
            secret=secret,
        )
    ]


def update(
    state: Endpoint,
    *,
    url: str,
    events: tuple[str, ...],
    project: str | None,
    description: str,
    status: Status,
    expected_version: int | None,
    actor: Actor | None,
    now: datetime,
) -> list[DomainEvent]:
    preconditions.require_version(state.version, expected_version, "This webhook endpoint")
    same = (url, events, project, description, status) == (
        state.url,
        state.events,
        state.project,
        state.description,
        state.status,
    )
    if same:
        return []
    reason = state.disabled_reason if status == "disabled" and state.status == "disabled" else None
    if status == "disabled" and state.status != "disabled":
        reason = "Disabled by request."
    return [
        EndpointUpdated(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            actor=actor,
            url=url,
            events=events,
            project=project,
            description=description,
            status=status,
            disabled_reason=reason,
        )
    ]


def rotate(
    state: Endpoint, secret: Sealed, grace: int, actor: Actor | None, now: datetime
) -> list[DomainEvent]:
    return [
        EndpointSecretRotated(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            actor=actor,
            secret=secret,
            previous=state.secret,
            previous_expires=now + timedelta(seconds=grace),
        )
    ]


def delete(
    state: Endpoint, expected_version: int | None, actor: Actor | None, now: datetime
) -> list[DomainEvent]:
    preconditions.require_version(state.version, expected_version, "This webhook endpoint")
    return [
        EndpointDeleted(
            originator_id=state.id, originator_version=state.version + 1, timestamp=now, actor=actor
        )
    ]


# --- deliveries ---------------------------------------------------------------------------------

DeliveryStatus = Literal["pending", "succeeded", "failed", "simulated"]


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    status_code: int | None  # None: no answer (refused, timed out, forbidden address)
    duration_ms: int
    response: str  # the first bytes of the answer's body
    error: str | None = None
    # Test mode: the request that would have been sent (its headers; the body is the delivery's).
    request: dict[str, str] | None = None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account: str
    endpoint_id: uuid.UUID
    event_id: str
    event_type: str
    body: bytes  # the event as published: what every attempt sends
    status: DeliveryStatus
    attempts: tuple[Attempt, ...]
    next_attempt: datetime | None
    created: datetime
    updated: datetime


class DeliveryScheduled(DomainEvent, frozen=True, kw_only=True):
    account: str
    endpoint_id: uuid.UUID
    event_id: str
    event_type: str
    body: bytes


class DeliveryAttempted(DomainEvent, frozen=True, kw_only=True):
    attempt: Attempt
    status: DeliveryStatus
    next_attempt: datetime | None


class DeliveryRequeued(DomainEvent, frozen=True, kw_only=True):
    """Redelivery by request: pending again, now."""


class EndpointDisabled(EndpointEvent, frozen=True, kw_only=True):
    reason: str


def delivery_id(endpoint_id: uuid.UUID, event_id: str) -> uuid.UUID:
    return index_uuid("webhook-delivery", str(endpoint_id), event_id)


@mutate.register
def _(event: DeliveryScheduled, _: None) -> Delivery:
    return Delivery(
        id=event.originator_id,
        version=event.originator_version,
        account=event.account,
        endpoint_id=event.endpoint_id,
        event_id=event.event_id,
        event_type=event.event_type,
        body=event.body,
        status="pending",
        attempts=(),
        next_attempt=event.timestamp,
        created=event.timestamp,
        updated=event.timestamp,
    )


@mutate.register
def _(event: DeliveryAttempted, state: Delivery) -> Delivery:
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        updated=event.timestamp,
        attempts=(*state.attempts, event.attempt),
        status=event.status,
        next_attempt=event.next_attempt,
    )


@mutate.register
def _(event: DeliveryRequeued, state: Delivery) -> Delivery:
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        updated=event.timestamp,
        status="pending",
        next_attempt=event.timestamp,
    )


@mutate.register
def _(event: EndpointDisabled, state: Endpoint) -> Endpoint:
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        updated=event.timestamp,
        status="disabled",
        disabled_reason=event.reason,
    )


def wants(endpoint: Endpoint, event_type: str, project: str | None) -> bool:
    """Whether an event goes to this endpoint: enabled, its type wanted, its project's if filtered."""
    if endpoint.deleted or endpoint.status != "enabled":
        return False
    if "*" not in endpoint.events and event_type not in endpoint.events:
        return False
    return endpoint.project is None or endpoint.project == project


def schedule(
    endpoint_id: uuid.UUID, account: str, event_id: str, event_type: str, body: bytes, now: datetime
) -> list[DomainEvent]:
    return [
        DeliveryScheduled(
            originator_id=delivery_id(endpoint_id, event_id),
            originator_version=1,
            timestamp=now,
            account=account,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event_type,
            body=body,
        )
    ]


def attempted(
    state: Delivery,
    attempt: Attempt,
    *,
    ok: bool,
    simulated: bool,
    final: bool,
    retry_after: float | None,
    retries: tuple[float, ...],
    window: float,
    now: datetime,
) -> list[DomainEvent]:
    """The attempt recorded, and what comes next: done, failed for good, or the next try by the
    schedule (`retries`: seconds after the 1st, 2nd, … failure, the last repeating) until `window`
    seconds after the delivery was made; a receiver's `Retry-After` can only push it later."""
    if state.status != "pending":
        return []
    status: DeliveryStatus
    nxt: datetime | None = None
    if simulated:
        status = "simulated"
    elif ok:
        status = "succeeded"
    elif final:
        status = "failed"
    else:
        failures = sum(
            1 for a in state.attempts if a.error is not None or a.status_code is None or a.status_code >= 300
        )
        delay = retries[min(failures, len(retries) - 1)]
        if retry_after is not None:
            delay = max(delay, retry_after)
        candidate = now + timedelta(seconds=delay)
        if candidate > state.created + timedelta(seconds=window):
            status = "failed"
        else:
            status, nxt = "pending", candidate
    return [
        DeliveryAttempted(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            attempt=attempt,
            status=status,
            next_attempt=nxt,
        )
    ]


def disable(state: Endpoint, reason: str, now: datetime) -> list[DomainEvent]:
    if state.status == "disabled" or state.deleted:
        return []
    return [
        EndpointDisabled(
            originator_id=state.id, originator_version=state.version + 1, timestamp=now, reason=reason
        )
    ]


def requeue(state: Delivery, now: datetime) -> list[DomainEvent]:
    if state.status == "pending":
        return []
    return [DeliveryRequeued(originator_id=state.id, originator_version=state.version + 1, timestamp=now)]
