"""Identity service messages: accounts, members, API keys and key verification.

Only a key's SHA-256 hash and a short hint ever cross the bus: the gateway (or the CLI) generates
a secret, sends its hash, and shows the secret to the client once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from stratus_contracts.auth import ALL_SCOPES, Caller, Scope
from stratus_contracts.events import Mode, event_type
from stratus_contracts.messages import Command, Query

SERVICE = "identity"
T = TypeVar("T")
Plan = Literal["free", "pro", "internal"]
PLANS: tuple[Plan, ...] = ("free", "pro", "internal")
MAX_ROTATION_OVERLAP = 30 * 86_400  # seconds an old secret may outlive its rotation
DEFAULT_ROTATION_OVERLAP = 86_400
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class IdentityCommand(Command[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


class IdentityQuery(Query[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


class NewKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key to record. Only its SHA-256 hash and a short hint ever cross the bus."""

    mode: Mode
    secret_hash: str
    hint: str
    name: str = "admin"
    scopes: tuple[Scope, ...] = ALL_SCOPES


# --- replies -----------------------------------------------------------------------------------


class BootstrapResult(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    created: bool
    key_ids: list[str] = []


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


class SecretView(msgspec.Struct, frozen=True, kw_only=True):
    """A secret of a key that still works: never the secret, only its hint and lifetime."""

    hint: str
    created: datetime
    expires_at: datetime | None = None


class KeyData(msgspec.Struct, frozen=True, kw_only=True):
    """A key as `key.*` events carry it: everything but the read-time facts of `KeyView`."""

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


class KeyView(KeyData, frozen=True, kw_only=True):
    # Read-time facts (never in events): the newest secret's age, and when the key was last used
    # (the gateway fills this from its usage records).
    age_seconds: int | None = None
    last_used: datetime | None = None


class KeyPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[KeyView]
    has_more: bool
    next_cursor: str | None = None


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


# --- accounts (operator commands: no caller, sent by `stratus` on the bus) ---------------------


class Bootstrap(IdentityCommand[BootstrapResult], frozen=True, kw_only=True):
    """Create the bootstrap account with these keys, unless it exists already."""

    keys: list[NewKey]
    plan: Plan = "free"  # `stratus up` sends STRATUS_BOOTSTRAP_PLAN


class EnsureKey(IdentityCommand[BootstrapResult], frozen=True, kw_only=True):
    """Make sure this exact key is an active key of the bootstrap account."""

    key: NewKey


class CreateAccount(IdentityCommand[AccountCreatedResult], frozen=True, kw_only=True):
    """A new tenant with its first keys (`stratus accounts create`)."""

    name: str
    plan: Plan = "free"
    keys: list[NewKey] = []


class SetPlan(IdentityCommand[AccountView], frozen=True, kw_only=True):
    """Change an account's plan (`stratus accounts set-plan`)."""

    account_id: str
    plan: Plan


# --- verification (the gateway's auth path) ---------------------------------------------------


class VerifyKey(IdentityQuery[Principal], frozen=True, kw_only=True):
    secret_hash: str


class GetKeyPrincipal(IdentityQuery[Principal], frozen=True, kw_only=True):
    """The principal of a key by id (the gateway checks a token's parent key with it)."""

    key_id: str


# --- keys (admin API; the caller's account and mode scope every lookup) ----------------------


class CreateKey(IdentityCommand[KeyView], frozen=True, kw_only=True):
    """A new key in the caller's account and mode. `None` restrictions mean "as the caller"."""

    # The gateway generates the secret on every attempt: a retry carries another hash and hint.
    volatile: ClassVar[tuple[str, ...]] = ("secret_hash", "hint")

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


class ListKeys(IdentityQuery[KeyPage], frozen=True, kw_only=True):
    caller: Caller
    limit: int = 20
    cursor: str | None = None
    revoked: bool | None = None  # None: both active and revoked keys


class GetKey(IdentityQuery[KeyView], frozen=True, kw_only=True):
    caller: Caller
    key_id: str


class UpdateKey(IdentityCommand[KeyView], frozen=True, kw_only=True):
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


class RevokeKey(IdentityCommand[KeyView], frozen=True, kw_only=True):
    """Revoke a key: from the API with `caller`, or by an operator with `account_id` alone."""

    account_id: str = ""
    key_id: str
    caller: Caller | None = None
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


class RotateKey(IdentityCommand[KeyView], frozen=True, kw_only=True):
    """Give a key a new secret; its current secrets stop working `overlap_seconds` from now."""

    volatile: ClassVar[tuple[str, ...]] = ("secret_hash", "hint")

    caller: Caller
    key_id: str
    secret_hash: str
    hint: str
    overlap_seconds: int = DEFAULT_ROTATION_OVERLAP
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


# --- members ----------------------------------------------------------------------------------


class AddMember(IdentityCommand[MemberView], frozen=True, kw_only=True):
    caller: Caller
    email: str
    name: str = ""


class GetMember(IdentityQuery[MemberView], frozen=True, kw_only=True):
    """A member of the caller's account and mode, or `member_not_found` (404)."""

    caller: Caller
    member_id: str


class ListMembers(IdentityQuery[MemberPage], frozen=True, kw_only=True):
    caller: Caller
    limit: int = 20
    cursor: str | None = None


class RemoveMember(IdentityCommand[MemberView], frozen=True, kw_only=True):
    """Remove a member; every key bound to it is revoked in the same commit."""

    caller: Caller
    member_id: str
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


# --- public events -----------------------------------------------------------------------------
# Every change to a key is a `key.*` event whose `data.id` is the key: gateways evict their cached
# principal of that key on it. Accounts span both modes; their events are published in live mode.

KEY_CREATED = event_type("key.created", KeyData, "An API key was created.")
KEY_UPDATED = event_type("key.updated", KeyData, "An API key's settings changed, or its account's plan did.")
KEY_ROTATED = event_type("key.rotated", KeyData, "An API key got a new secret.")
KEY_REVOKED = event_type("key.revoked", KeyData, "An API key was revoked.")
MEMBER_CREATED = event_type("member.created", MemberView, "A member was added to the account.")
MEMBER_DELETED = event_type(
    "member.deleted", MemberView, "A member was removed; their keys were revoked with them."
)
ACCOUNT_CREATED = event_type("account.created", AccountView, "An account was created.")
ACCOUNT_UPDATED = event_type("account.updated", AccountView, "An account's plan changed.")
