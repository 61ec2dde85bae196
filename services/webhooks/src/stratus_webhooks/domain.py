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

import msgspec

from stratus_contracts.events import Actor
from stratus_contracts.webhooks import Status
from stratus_eventstore import preconditions
from stratus_eventstore.model import DomainEvent


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
