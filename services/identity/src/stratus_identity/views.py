"""What identity shows of its aggregates: account, key, member and principal views (no hashes)."""

from __future__ import annotations

from datetime import datetime

from stratus_contracts.identity import AccountView, KeyView, MemberView, Principal, SecretView
from stratus_contracts.ids import encode_id
from stratus_identity import domain


def account_view(account: domain.Account) -> AccountView:
    return AccountView(
        id=encode_id("acct", account.id),
        name=account.name,
        plan=account.plan,
        created=account.created,
        updated=account.updated or account.created,
    )


def key_view(key: domain.ApiKey, now: datetime) -> KeyView:
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


def member_view(member: domain.Member) -> MemberView:
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


def principal_of(key: domain.ApiKey, secret: domain.KeySecret, plan: str) -> Principal:
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
