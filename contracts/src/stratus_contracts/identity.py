"""Identity service messages: accounts, API keys and key verification."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from stratus_contracts.auth import ALL_SCOPES, Scope
from stratus_contracts.events import Mode

SERVICE = "identity"


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


class GetKeyPrincipal(msgspec.Struct, frozen=True, kw_only=True):
    """The principal of a key by id (the gateway checks a token's parent key with it)."""

    key_id: str


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: the verified key with everything the gateway needs to authorize a request
    without asking again (it caches this until the key changes)."""

    key_id: str
    account_id: str
    mode: Mode
    scopes: tuple[Scope, ...]
    name: str
    created: datetime
    secret_created: datetime | None = None  # when the presented secret was issued (key age)
    expires_at: datetime | None = None  # when the presented secret stops working
    project_ids: tuple[str, ...] | None = None  # None: every project
    environments: tuple[str, ...] | None = None  # None: every environment
    allowed_ips: tuple[str, ...] = ()  # CIDRs; empty: any address
    member_id: str | None = None
    plan: str = "free"


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
