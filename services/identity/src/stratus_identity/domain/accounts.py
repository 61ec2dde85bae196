"""Accounts (tenants) and the bootstrap marker: state, events, decisions. Pure; `now` comes in.

The bootstrap marker is an aggregate with a fixed id that names the bootstrap account, so
`stratus up` makes that account once however often it starts.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import singledispatch

import msgspec

from stratus_contracts.errors import FieldError
from stratus_contracts.events import Actor
from stratus_contracts.identity import Plan
from stratus_eventstore.model import DomainEvent, index_uuid
from stratus_identity.domain.base import MAX_NAME, IdentityEvent, invalid, moved

BOOTSTRAP_ID = index_uuid("bootstrap-account")


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    name: str
    created: datetime
    plan: Plan = "free"
    updated: datetime | None = None


class BootstrapMarker(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account_id: uuid.UUID


class AccountCreated(IdentityEvent, frozen=True, kw_only=True):
    name: str
    plan: Plan = "free"


class AccountPlanChanged(IdentityEvent, frozen=True, kw_only=True):
    plan: Plan


class BootstrapRecorded(DomainEvent, frozen=True, kw_only=True):
    account_id: uuid.UUID


moved((AccountCreated, AccountPlanChanged, BootstrapRecorded))


@singledispatch
def mutate(event: DomainEvent, state: object) -> object:
    raise NotImplementedError(type(event).__name__)


@mutate.register
def _(event: AccountCreated, _: None) -> Account:
    return Account(
        id=event.originator_id,
        version=1,
        name=event.name,
        plan=event.plan,
        created=event.timestamp,
        updated=event.timestamp,
    )


@mutate.register
def _(event: AccountPlanChanged, state: Account) -> Account:
    return msgspec.structs.replace(
        state, version=event.originator_version, plan=event.plan, updated=event.timestamp
    )


@mutate.register
def _(event: BootstrapRecorded, _: None) -> BootstrapMarker:
    return BootstrapMarker(id=event.originator_id, version=1, account_id=event.account_id)


def create(
    account_id: uuid.UUID, name: str, plan: Plan, now: datetime, actor: Actor | None = None
) -> list[DomainEvent]:
    if not name.strip() or len(name) > MAX_NAME:
        raise invalid([FieldError(field="name", message=f"Give a name of 1–{MAX_NAME} characters.")])
    return [
        AccountCreated(
            originator_id=account_id,
            originator_version=1,
            timestamp=now,
            name=name.strip(),
            plan=plan,
            actor=actor,
        )
    ]


def bootstrap(
    marker: BootstrapMarker | None, account_id: uuid.UUID, now: datetime, plan: Plan = "free"
) -> list[DomainEvent]:
    if marker is not None:
        return []
    return [
        *create(account_id, "bootstrap", plan, now),
        BootstrapRecorded(
            originator_id=BOOTSTRAP_ID, originator_version=1, timestamp=now, account_id=account_id
        ),
    ]


def set_plan(account: Account, plan: Plan, now: datetime) -> list[DomainEvent]:
    """The new plan (each active key then records it too, so gateways drop cached principals)."""
    if account.plan == plan:
        return []
    return [
        AccountPlanChanged(
            originator_id=account.id, originator_version=account.version + 1, timestamp=now, plan=plan
        )
    ]
