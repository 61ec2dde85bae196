"""What identity shows of its aggregates (never a hash): reply mappings for accounts, keys,
members and principals, and which domain events become public events.

A public event carries the resource as it was right after the event, and the actor who caused
it. Every change to a key publishes a `key.*` event whose `data.id` is the key id: gateways evict
their cached principal of that key on it (a plan change marks each of the account's keys for
exactly this reason). Index, marker and binding events are internal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from stratus_contracts import identity as c
from stratus_contracts.events import Mode
from stratus_contracts.identity import AccountView, KeyData, KeyView, MemberView, Principal, SecretView
from stratus_contracts.ids import encode_id
from stratus_identity.domain import accounts, keys, members
from stratus_kit import Publisher


def account_view(account: accounts.Account) -> AccountView:
    return AccountView(
        id=encode_id("acct", account.id),
        name=account.name,
        plan=account.plan,
        created=account.created,
        updated=account.updated or account.created,
    )


def key_view(key: keys.ApiKey, now: datetime) -> KeyView:
    """The key as of `now`: only secrets still alive then are listed, newest last."""
    newest = key.secrets[-1].created if key.secrets else key.created
    return KeyView(
        id=encode_id("key", key.id),
        account=key.account,
        mode=key.mode,
        name=key.name,
        hint=key.hint,
        scopes=key.scopes,
        created=key.created,
        revoked=key.revoked,
        updated=key.updated or key.created,
        project_ids=key.project_ids,
        environments=key.environments,
        allowed_ips=key.allowed_ips,
        expires_at=key.expires_at,
        member_id=key.member_id,
        secrets=tuple(
            SecretView(hint=s.hint, created=s.created, expires_at=s.expires_at)
            for s in key.secrets
            if s.alive(now)
        ),
        version=key.version,
        age_seconds=max(0, int((now - newest).total_seconds())),
    )


def member_view(member: members.Member) -> MemberView:
    return MemberView(
        id=encode_id("mem", member.id),
        account=member.account,
        mode=member.mode,
        email=member.email,
        name=member.name,
        created=member.created,
        updated=member.updated,
        version=member.version,
        deleted=member.removed is not None,
    )


def principal_of(key: keys.ApiKey, secret: keys.KeySecret, plan: str) -> Principal:
    """The principal for one secret of a key: it stops at the earlier of the two expiries."""
    ends = [t for t in (key.expires_at, secret.expires_at) if t is not None]
    return Principal(
        key_id=encode_id("key", key.id),
        account_id=key.account,
        mode=key.mode,
        scopes=key.scopes,
        name=key.name,
        created=key.created,
        secret_created=secret.created,
        expires_at=min(ends) if ends else None,
        project_ids=key.project_ids,
        environments=key.environments,
        allowed_ips=key.allowed_ips,
        member_id=key.member_id,
        plan=plan,
    )


_KEY_DATA = tuple(f.name for f in msgspec.structs.fields(KeyData))


def key_data(key: keys.ApiKey, now: datetime) -> KeyData:
    """The key as `key.*` events carry it: its view without the read-time facts."""
    shown = key_view(key, now)
    return KeyData(**{name: getattr(shown, name) for name in _KEY_DATA})


def _account(event: Any, before: Any, after: accounts.Account, mode: Mode) -> tuple[Mode, str, AccountView]:
    # Accounts span both modes; their lifecycle events are published in live mode.
    return "live", encode_id("acct", after.id), account_view(after)


def _key(event: Any, before: Any, after: keys.ApiKey, mode: Mode) -> tuple[Mode, str, KeyData]:
    return after.mode, after.account, key_data(after, event.timestamp)


def _member(event: Any, before: Any, after: members.Member, mode: Mode) -> tuple[Mode, str, MemberView]:
    return after.mode, after.account, member_view(after)


PUBLISHER = Publisher(
    {
        accounts.AccountCreated: (c.ACCOUNT_CREATED, _account),
        accounts.AccountPlanChanged: (c.ACCOUNT_UPDATED, _account),
        keys.KeyCreated: (c.KEY_CREATED, _key),
        keys.KeyUpdated: (c.KEY_UPDATED, _key),
        keys.KeyPlanChanged: (c.KEY_UPDATED, _key),
        keys.KeyRotated: (c.KEY_ROTATED, _key),
        keys.KeyRevoked: (c.KEY_REVOKED, _key),
        members.MemberAdded: (c.MEMBER_CREATED, _member),
        members.MemberRemoved: (c.MEMBER_DELETED, _member),
    }
)
