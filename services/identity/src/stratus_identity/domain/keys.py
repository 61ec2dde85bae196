"""API keys and the key-hash index: state, events, decisions. Pure; `now` comes in.

A key is found by the hash of any of its secrets through a key-hash index aggregate whose id
derives from the hash. A key never grants more than its creator holds (`check_within`), and
changing, rotating or revoking one needs every right it has (`manageable`).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import singledispatch

import msgspec

from stratus_contracts.auth import ALL_SCOPES, Caller, Scope
from stratus_contracts.errors import DomainError, FieldError
from stratus_contracts.events import Actor, Mode
from stratus_contracts.identity import MAX_ROTATION_OVERLAP, NewKey, Plan
from stratus_contracts.ids import decode_id, encode_id
from stratus_eventstore.model import DomainEvent, index_uuid
from stratus_identity.domain.base import MAX_NAME, IdentityEvent, invalid, moved

MAX_LIST = 100  # project ids, environments or CIDRs on one key
# Expired secrets are kept (so that they answer `key_expired`, not `invalid_api_key`) until they
# have been dead this long at the next rotation; then they are dropped from the key.
KEEP_EXPIRED = timedelta(days=30)
ENVIRONMENT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class KeySecret(msgspec.Struct, frozen=True, kw_only=True):
    """One secret of a key: its hash (never leaves identity), hint and lifetime."""

    hash: str
    hint: str
    created: datetime
    expires_at: datetime | None = None

    def alive(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


class KeySettings(msgspec.Struct, frozen=True, kw_only=True):
    """What a key may do and where from: everything PATCH can change."""

    name: str
    scopes: tuple[Scope, ...]
    project_ids: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None
    allowed_ips: tuple[str, ...] = ()
    expires_at: datetime | None = None


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
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
    secrets: tuple[KeySecret, ...] = ()  # oldest first

    @property
    def settings(self) -> KeySettings:
        return KeySettings(
            name=self.name,
            scopes=self.scopes,
            project_ids=self.project_ids,
            environments=self.environments,
            allowed_ips=self.allowed_ips,
            expires_at=self.expires_at,
        )


class KeyHashIndex(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    key_id: uuid.UUID


class KeyCreated(IdentityEvent, frozen=True, kw_only=True):
    account: str
    mode: Mode
    name: str
    hint: str
    scopes: tuple[Scope, ...]
    secret_hash: str
    project_ids: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None
    allowed_ips: tuple[str, ...] = ()
    expires_at: datetime | None = None
    member_id: str | None = None


class KeyUpdated(IdentityEvent, frozen=True, kw_only=True):
    """The key's settings after the change (all of them, so replay needs no tri-state fields)."""

    name: str
    scopes: tuple[Scope, ...]
    project_ids: tuple[str, ...] | None
    environments: tuple[str, ...] | None
    allowed_ips: tuple[str, ...]
    expires_at: datetime | None
    changed: tuple[str, ...]


class KeyRotated(IdentityEvent, frozen=True, kw_only=True):
    secret_hash: str
    hint: str
    overlap_seconds: int
    previous_expire: datetime  # the older secrets stop working at this time


class KeyRevoked(IdentityEvent, frozen=True, kw_only=True):
    reason: str = "revoked"  # or "member_removed"


class KeyPlanChanged(IdentityEvent, frozen=True, kw_only=True):
    """The key's account changed plan: principals made from this key are stale."""

    plan: Plan


class KeyHashRecorded(DomainEvent, frozen=True, kw_only=True):
    key_id: uuid.UUID


moved((KeyCreated, KeyUpdated, KeyRotated, KeyRevoked, KeyPlanChanged, KeyHashRecorded))


def key_hash_index_id(secret_hash: str) -> uuid.UUID:
    return index_uuid("key-hash", secret_hash)


@singledispatch
def mutate(event: DomainEvent, state: object) -> object:
    raise NotImplementedError(type(event).__name__)


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
        updated=event.timestamp,
        project_ids=event.project_ids,
        environments=event.environments,
        allowed_ips=event.allowed_ips,
        expires_at=event.expires_at,
        member_id=event.member_id,
        secrets=(KeySecret(hash=event.secret_hash, hint=event.hint, created=event.timestamp),),
    )


@mutate.register
def _(event: KeyUpdated, state: ApiKey) -> ApiKey:
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        name=event.name,
        scopes=event.scopes,
        project_ids=event.project_ids,
        environments=event.environments,
        allowed_ips=event.allowed_ips,
        expires_at=event.expires_at,
        updated=event.timestamp,
    )


@mutate.register
def _(event: KeyRotated, state: ApiKey) -> ApiKey:
    ends = event.previous_expire
    older = (
        msgspec.structs.replace(s, expires_at=ends if s.expires_at is None else min(s.expires_at, ends))
        for s in state.secrets
    )
    kept = tuple(s for s in older if s.expires_at is None or s.expires_at > event.timestamp - KEEP_EXPIRED)
    fresh = KeySecret(hash=event.secret_hash, hint=event.hint, created=event.timestamp)
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        hint=event.hint,
        secrets=(*kept, fresh),
        updated=event.timestamp,
    )


@mutate.register
def _(event: KeyRevoked, state: ApiKey) -> ApiKey:
    return msgspec.structs.replace(
        state, version=event.originator_version, revoked=event.timestamp, updated=event.timestamp
    )


@mutate.register
def _(event: KeyPlanChanged, state: ApiKey) -> ApiKey:
    # Nothing of the key itself changes; the event exists so that caches of it are evicted.
    return msgspec.structs.replace(state, version=event.originator_version)


@mutate.register
def _(event: KeyHashRecorded, _: None) -> KeyHashIndex:
    return KeyHashIndex(id=event.originator_id, version=1, key_id=event.key_id)


# --- validation ---------------------------------------------------------------------------------


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def validate(settings: KeySettings) -> KeySettings:
    """The settings in canonical form (deduplicated, CIDRs normalised), or `validation_failed`."""
    errors: list[FieldError] = []
    name = settings.name.strip()
    if not name or len(name) > MAX_NAME:
        errors.append(FieldError(field="name", message=f"Give a name of 1–{MAX_NAME} characters."))
    scopes = tuple(s for s in ALL_SCOPES if s in settings.scopes)
    if not scopes or len(scopes) != len(set(settings.scopes)):
        errors.append(FieldError(field="scopes", message="Give one or more of read, write, admin."))
    project_ids = None if settings.project_ids is None else _unique(settings.project_ids)
    for i, project_id in enumerate(project_ids or ()):
        if decode_id("prj", project_id) is None:
            errors.append(FieldError(field=f"project_ids[{i}]", message="Not a project id (prj_…)."))
    environments = None if settings.environments is None else _unique(settings.environments)
    for i, env in enumerate(environments or ()):
        if not ENVIRONMENT_NAME.match(env):
            errors.append(FieldError(field=f"environments[{i}]", message="Not an environment name."))
    cidrs: list[str] = []
    for i, cidr in enumerate(settings.allowed_ips):
        try:
            cidrs.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError:
            errors.append(FieldError(field=f"allowed_ips[{i}]", message="Not an IPv4 or IPv6 CIDR."))
    for field, values in (
        ("project_ids", project_ids),
        ("environments", environments),
        ("allowed_ips", cidrs),
    ):
        if values is not None and len(values) > MAX_LIST:
            errors.append(FieldError(field=field, message=f"At most {MAX_LIST} entries."))
    if settings.expires_at is not None and settings.expires_at.tzinfo is None:
        errors.append(FieldError(field="expires_at", message="Give a time zone (e.g. `Z`)."))
    if errors:
        raise invalid(errors)
    return KeySettings(
        name=name,
        scopes=scopes,
        project_ids=project_ids,
        environments=environments,
        allowed_ips=_unique(cidrs),
        expires_at=settings.expires_at,
    )


def _beyond(asked: tuple[str, ...] | None, held: tuple[str, ...] | None) -> list[str] | None:
    """What `asked` has that `held` lacks (None: asked for everything while holding a subset)."""
    if held is None:
        return []
    if asked is None:
        return None
    return [x for x in asked if x not in held]


def check_within(caller: Caller, settings: KeySettings, member_id: str | None) -> None:
    """A key never grants more than its creator holds: scopes, projects, environments, member."""
    missing: list[str] = []
    if extra := [s for s in settings.scopes if s not in caller.scopes]:
        missing.append("scopes " + ", ".join(extra))
    for what, asked, held in (
        ("projects", settings.project_ids, caller.project_ids),
        ("environments", settings.environments, caller.environments),
    ):
        extra_items = _beyond(asked, held)
        if extra_items is None:
            missing.append(f"every {what[:-1]} (this key is restricted)")
        elif extra_items:
            missing.append(f"{what} " + ", ".join(extra_items))
    if caller.member_id is not None and member_id != caller.member_id:
        missing.append("another member's access")
    if missing:
        raise DomainError("scope_not_held", "The calling key does not hold " + "; ".join(missing) + ".")


def inherit(caller: Caller, settings: KeySettings) -> KeySettings:
    """Restrictions left out of a new key default to the creator's own."""
    return msgspec.structs.replace(
        settings,
        project_ids=caller.project_ids if settings.project_ids is None else settings.project_ids,
        environments=caller.environments if settings.environments is None else settings.environments,
    )


def manageable(caller: Caller, key: ApiKey) -> None:
    """Changing, rotating or revoking a key needs every right that key has."""
    check_within(caller, key.settings, key.member_id)


# --- decisions ----------------------------------------------------------------------------------


def create(
    key_id: uuid.UUID,
    account: str,
    spec: NewKey,
    now: datetime,
    *,
    settings: KeySettings | None = None,
    member_id: str | None = None,
    actor: Actor | None = None,
) -> list[DomainEvent]:
    """A new key and its hash-index entry, saved together (the same secret cannot be added twice).
    A key bound to a member is recorded on the member too (`members.bind_key`), in the same save."""
    settings = settings or KeySettings(name=spec.name, scopes=spec.scopes)
    return [
        KeyCreated(
            originator_id=key_id,
            originator_version=1,
            timestamp=now,
            actor=actor,
            account=account,
            mode=spec.mode,
            name=settings.name,
            hint=spec.hint,
            scopes=settings.scopes,
            secret_hash=spec.secret_hash,
            project_ids=settings.project_ids,
            environments=settings.environments,
            allowed_ips=settings.allowed_ips,
            expires_at=settings.expires_at,
            member_id=member_id,
        ),
        KeyHashRecorded(
            originator_id=key_hash_index_id(spec.secret_hash),
            originator_version=1,
            timestamp=now,
            key_id=key_id,
        ),
    ]


def plan_changed(keys: Iterable[ApiKey], plan: Plan, now: datetime) -> list[DomainEvent]:
    """A marker on each active key of an account whose plan changed: gateways evict its principal."""
    return [
        KeyPlanChanged(originator_id=k.id, originator_version=k.version + 1, timestamp=now, plan=plan)
        for k in keys
        if k.revoked is None
    ]


def _not_revoked(key: ApiKey) -> None:
    if key.revoked is not None:
        raise DomainError("key_revoked", f"API key {encode_id('key', key.id)!r} is revoked.")


def update(key: ApiKey, settings: KeySettings, now: datetime, actor: Actor | None) -> list[DomainEvent]:
    _not_revoked(key)
    before = msgspec.structs.asdict(key.settings)
    after = msgspec.structs.asdict(settings)
    changed = tuple(field for field in after if after[field] != before[field])
    if not changed:
        return []
    return [
        KeyUpdated(
            originator_id=key.id,
            originator_version=key.version + 1,
            timestamp=now,
            actor=actor,
            changed=changed,
            **after,
        )
    ]


def rotate(
    key: ApiKey, secret_hash: str, hint: str, overlap_seconds: int, now: datetime, actor: Actor | None
) -> list[DomainEvent]:
    _not_revoked(key)
    if not 0 <= overlap_seconds <= MAX_ROTATION_OVERLAP:
        raise invalid(
            [FieldError(field="overlap_seconds", message=f"Give 0–{MAX_ROTATION_OVERLAP} seconds.")]
        )
    return [
        KeyRotated(
            originator_id=key.id,
            originator_version=key.version + 1,
            timestamp=now,
            actor=actor,
            secret_hash=secret_hash,
            hint=hint,
            overlap_seconds=overlap_seconds,
            previous_expire=now + timedelta(seconds=overlap_seconds),
        ),
        KeyHashRecorded(
            originator_id=key_hash_index_id(secret_hash), originator_version=1, timestamp=now, key_id=key.id
        ),
    ]


def revoke(
    key: ApiKey, now: datetime, actor: Actor | None = None, reason: str = "revoked"
) -> list[DomainEvent]:
    if key.revoked is not None:
        return []
    return [
        KeyRevoked(
            originator_id=key.id,
            originator_version=key.version + 1,
            timestamp=now,
            actor=actor,
            reason=reason,
        )
    ]


def verify(key: ApiKey | None, secret_hash: str | None, now: datetime) -> tuple[ApiKey, KeySecret]:
    """The key and the presented secret (the newest one when looked up by id), or the 401 code."""
    secret = None
    if key is not None and key.secrets:
        if secret_hash is None:
            secret = key.secrets[-1]
        else:
            secret = next((s for s in key.secrets if s.hash == secret_hash), None)
    if key is None or secret is None:
        raise DomainError("invalid_api_key", "No active API key matches the one sent.")
    if key.revoked is not None:
        raise DomainError("api_key_revoked", "This API key was revoked.")
    if not secret.alive(now) or (key.expires_at is not None and key.expires_at <= now):
        raise DomainError("key_expired", "This API key (or this secret of it) has expired.")
    return key, secret
