"""Identity service messages: accounts, members, API keys and key verification.

Only a key's SHA-256 hash and a short hint ever cross the bus: the gateway (or the CLI) generates
a secret, sends its hash, and shows the secret to the client once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from stratus_contracts.auth import ALL_SCOPES, Caller, Scope
from stratus_contracts.events import Mode

SERVICE = "identity"
Plan = Literal["free", "pro", "internal"]
PLANS: tuple[Plan, ...] = ("free", "pro", "internal")
MAX_ROTATION_OVERLAP = 30 * 86_400  # seconds an old secret may outlive its rotation
DEFAULT_ROTATION_OVERLAP = 86_400
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class NewKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key to record. Only its SHA-256 hash and a short hint ever cross the bus."""

    mode: Mode
    secret_hash: str
    hint: str
    name: str = "admin"
    scopes: tuple[Scope, ...] = ALL_SCOPES


# --- accounts (operator commands: no caller, sent by `stratus` on the bus) ---------------------


class Bootstrap(msgspec.Struct, frozen=True, kw_only=True):
    """Create the bootstrap account with these keys, unless it exists already."""

    keys: list[NewKey]
    plan: Plan = "free"  # `stratus up` sends STRATUS_BOOTSTRAP_PLAN


class EnsureKey(msgspec.Struct, frozen=True, kw_only=True):
    """Make sure this exact key is an active key of the bootstrap account."""

    key: NewKey


class BootstrapResult(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    created: bool
    key_ids: list[str] = []


class CreateAccount(msgspec.Struct, frozen=True, kw_only=True):
    """A new tenant with its first keys (`stratus accounts create`)."""

    name: str
    plan: Plan = "free"
    keys: list[NewKey] = []


class SetPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Change an account's plan (`stratus accounts set-plan`)."""

    account_id: str
    plan: Plan


class AccountView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["account"] = "account"
    name: str
    plan: Plan
    created: datetime
    updated: datetime


class AccountCreatedResult(msgspec.Struct, frozen=True, kw_only=True):
    account: AccountView
    key_ids: list[str]


# --- verification (the gateway's auth path) ---------------------------------------------------


class VerifyKey(msgspec.Struct, frozen=True, kw_only=True):
    secret_hash: str


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


# --- keys (admin API; the caller's account and mode scope every lookup) ----------------------


class CreateKey(msgspec.Struct, frozen=True, kw_only=True):
    """A new key in the caller's account and mode. `None` restrictions mean "as the caller"."""

    caller: Caller
    secret_hash: str
    hint: str
    name: str
    scopes: tuple[Scope, ...]
    project_ids: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None
    allowed_ips: tuple[str, ...] = ()
    expires_at: AwareDatetime | None = None
    member_id: str | None = None


class ListKeys(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    limit: int = 20
    cursor: str | None = None
    revoked: bool | None = None  # None: both active and revoked keys


class GetKey(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    key_id: str


class UpdateKey(msgspec.Struct, frozen=True, kw_only=True):
    """Change a key's settings. `None`/UNSET name and scopes stay; for the restrictions UNSET
    stays and `None` removes the restriction (every project, every environment, no expiry)."""

    caller: Caller
    key_id: str
    name: str | None = None
    scopes: tuple[Scope, ...] | None = None
    project_ids: tuple[str, ...] | UnsetType | None = UNSET
    environments: tuple[str, ...] | UnsetType | None = UNSET
    allowed_ips: tuple[str, ...] | UnsetType | None = UNSET
    expires_at: AwareDatetime | UnsetType | None = UNSET
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


class RevokeKey(msgspec.Struct, frozen=True, kw_only=True):
    """Revoke a key: from the API with `caller`, or by an operator with `account_id` alone."""

    account_id: str = ""
    key_id: str
    caller: Caller | None = None
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


class RotateKey(msgspec.Struct, frozen=True, kw_only=True):
    """Give a key a new secret; its current secrets stop working `overlap_seconds` from now."""

    caller: Caller
    key_id: str
    secret_hash: str
    hint: str
    overlap_seconds: int = DEFAULT_ROTATION_OVERLAP
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


class SecretView(msgspec.Struct, frozen=True, kw_only=True):
    """A secret of a key that still works: never the secret, only its hint and lifetime."""

    hint: str
    created: datetime
    expires_at: datetime | None = None


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["api_key"] = "api_key"
    account: str
    mode: Mode
    name: str
    hint: str  # of the newest secret
    scopes: tuple[Scope, ...]
    created: datetime
    revoked: datetime | None = None
    updated: datetime | None = None
    project_ids: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None
    allowed_ips: tuple[str, ...] = ()
    expires_at: datetime | None = None
    member_id: str | None = None
    secrets: tuple[SecretView, ...] = ()  # the secrets that still work, newest last
    version: int = 1
    # Read-time facts (never in events): the newest secret's age, and when the key was last used
    # (the gateway fills this from its usage records).
    age_seconds: int | None = None
    last_used: datetime | None = None


class KeyPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[KeyView]
    has_more: bool
    next_cursor: str | None = None


# --- members ----------------------------------------------------------------------------------


class AddMember(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    email: str
    name: str = ""


class GetMember(msgspec.Struct, frozen=True, kw_only=True):
    """A member of the caller's account and mode, or `member_not_found` (404)."""

    caller: Caller
    member_id: str


class ListMembers(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    limit: int = 20
    cursor: str | None = None


class RemoveMember(msgspec.Struct, frozen=True, kw_only=True):
    """Remove a member; every key bound to it is revoked in the same commit."""

    caller: Caller
    member_id: str
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


class MemberView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["member"] = "member"
    account: str
    mode: Mode
    email: str
    name: str
    created: datetime
    updated: datetime
    version: int = 1
    deleted: bool = False


class MemberPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[MemberView]
    has_more: bool
    next_cursor: str | None = None
