"""Identity service messages: accounts, API keys and key verification."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from stratus_contracts.events import Mode

SERVICE = "identity"
Scope = Literal["read", "write", "admin"]
ALL_SCOPES: tuple[Scope, ...] = ("read", "write", "admin")


class NewKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key to record. Only its SHA-256 hash and a short hint ever cross the bus."""

    mode: Mode
    secret_hash: str
    hint: str
    name: str = "admin"
    scopes: tuple[Scope, ...] = ALL_SCOPES


class Bootstrap(msgspec.Struct, frozen=True, kw_only=True):
    """Create the bootstrap account with these keys, unless it exists already."""

    keys: list[NewKey]


class EnsureKey(msgspec.Struct, frozen=True, kw_only=True):
    """Make sure this exact key is an active key of the bootstrap account."""

    key: NewKey


class BootstrapResult(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    created: bool
    key_ids: list[str] = []


class VerifyKey(msgspec.Struct, frozen=True, kw_only=True):
    secret_hash: str


class RevokeKey(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    key_id: str


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: the verified key's identity, account, mode and scopes."""

    key_id: str
    account_id: str
    mode: Mode
    scopes: tuple[Scope, ...]
    name: str
    created: datetime


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["api_key"] = "api_key"
    account: str
    mode: Mode
    name: str
    hint: str
    scopes: tuple[Scope, ...]
    created: datetime
    revoked: datetime | None = None
