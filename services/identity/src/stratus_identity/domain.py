"""Accounts, API keys and their indexes: state, decisions and event application (pure, no I/O).

A key is found by the hash of its secret through a key-hash index aggregate whose id derives from
the hash; the bootstrap marker is an aggregate with a fixed id that names the bootstrap account.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import singledispatch

import msgspec

from stratus_contracts.errors import DomainError
from stratus_contracts.events import Mode
from stratus_contracts.identity import NewKey, Scope
from stratus_eventstore.model import DomainEvent, index_uuid

BOOTSTRAP_ID = index_uuid("bootstrap-account")


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    name: str
    created: datetime


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account: str
    mode: Mode
    name: str
    hint: str
    scopes: tuple[Scope, ...]
    created: datetime
    revoked: datetime | None = None


class KeyHashIndex(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    key_id: uuid.UUID


class BootstrapMarker(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account_id: uuid.UUID


class AccountCreated(DomainEvent, frozen=True, kw_only=True):
    name: str


class KeyCreated(DomainEvent, frozen=True, kw_only=True):
    account: str
    mode: Mode
    name: str
    hint: str
    scopes: tuple[Scope, ...]
    secret_hash: str


class KeyRevoked(DomainEvent, frozen=True, kw_only=True):
    pass


class KeyHashRecorded(DomainEvent, frozen=True, kw_only=True):
    key_id: uuid.UUID


class BootstrapRecorded(DomainEvent, frozen=True, kw_only=True):
    account_id: uuid.UUID


def key_hash_index_id(secret_hash: str) -> uuid.UUID:
    return index_uuid("key-hash", secret_hash)


@singledispatch
def mutate(event: DomainEvent, state: object) -> object:
    raise NotImplementedError(type(event).__name__)


@mutate.register
def _(event: AccountCreated, _: None) -> Account:
    return Account(id=event.originator_id, version=1, name=event.name, created=event.timestamp)


@mutate.register
def _(event: KeyCreated, _: None) -> ApiKey:
    return ApiKey(
        id=event.originator_id,
        version=1,
        account=event.account,
        mode=event.mode,
        name=event.name,
        hint=event.hint,
        scopes=event.scopes,
        created=event.timestamp,
    )


@mutate.register
def _(event: KeyRevoked, state: ApiKey) -> ApiKey:
    return msgspec.structs.replace(state, version=event.originator_version, revoked=event.timestamp)


@mutate.register
def _(event: KeyHashRecorded, _: None) -> KeyHashIndex:
    return KeyHashIndex(id=event.originator_id, version=1, key_id=event.key_id)


@mutate.register
def _(event: BootstrapRecorded, _: None) -> BootstrapMarker:
    return BootstrapMarker(id=event.originator_id, version=1, account_id=event.account_id)


def project(state: object, events: Iterable[DomainEvent]) -> object:
    for event in events:
        state = mutate(event, state)
    return state


def create_key(key_id: uuid.UUID, account: str, spec: NewKey) -> list[DomainEvent]:
    """A new key and its hash-index entry, saved together (the same secret cannot be added twice)."""
    return [
        KeyCreated(
            originator_id=key_id,
            originator_version=1,
            account=account,
            mode=spec.mode,
            name=spec.name,
            hint=spec.hint,
            scopes=spec.scopes,
            secret_hash=spec.secret_hash,
        ),
        KeyHashRecorded(
            originator_id=key_hash_index_id(spec.secret_hash), originator_version=1, key_id=key_id
        ),
    ]


def create_account(account_id: uuid.UUID, name: str) -> list[DomainEvent]:
    return [AccountCreated(originator_id=account_id, originator_version=1, name=name)]


def bootstrap(marker: BootstrapMarker | None, account_id: uuid.UUID) -> list[DomainEvent]:
    if marker is not None:
        return []
    return [
        *create_account(account_id, "bootstrap"),
        BootstrapRecorded(originator_id=BOOTSTRAP_ID, originator_version=1, account_id=account_id),
    ]


def revoke(key: ApiKey) -> list[DomainEvent]:
    if key.revoked is not None:
        return []
    return [KeyRevoked(originator_id=key.id, originator_version=key.version + 1)]


def verify(key: ApiKey | None) -> ApiKey:
    if key is None:
        raise DomainError("invalid_api_key", "No active API key matches the one sent.")
    if key.revoked is not None:
        raise DomainError("api_key_revoked", "This API key was revoked.")
    return key
