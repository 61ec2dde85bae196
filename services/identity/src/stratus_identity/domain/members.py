"""Members of an account and mode, and the email index: state, events, decisions. Pure; `now`
comes in.

A member's email is unique within an account and mode through an email index aggregate claimed in
the same save as the member, so the store's optimistic concurrency rejects a second claim.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from functools import singledispatch

import msgspec

from stratus_contracts.errors import DomainError, FieldError
from stratus_contracts.events import Actor, Mode
from stratus_eventstore.model import DomainEvent, index_uuid
from stratus_identity.domain.base import MAX_NAME, IdentityEvent, invalid, moved

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class Member(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account: str
    mode: Mode
    email: str
    name: str
    created: datetime
    updated: datetime
    removed: datetime | None = None
    key_ids: tuple[uuid.UUID, ...] = ()  # keys bound to this member


class EmailIndex(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    member_id: uuid.UUID | None


class MemberAdded(IdentityEvent, frozen=True, kw_only=True):
    account: str
    mode: Mode
    email: str
    name: str


class MemberRemoved(IdentityEvent, frozen=True, kw_only=True):
    pass


class MemberKeyBound(IdentityEvent, frozen=True, kw_only=True):
    key_id: uuid.UUID


class MemberEmailClaimed(DomainEvent, frozen=True, kw_only=True):
    member_id: uuid.UUID


class MemberEmailReleased(DomainEvent, frozen=True, kw_only=True):
    member_id: uuid.UUID


moved((MemberAdded, MemberRemoved, MemberKeyBound, MemberEmailClaimed, MemberEmailReleased))


def email_index_id(account: str, mode: Mode, email: str) -> uuid.UUID:
    return index_uuid("member-email", account, mode, email)


@singledispatch
def mutate(event: DomainEvent, state: object) -> object:
    raise NotImplementedError(type(event).__name__)


@mutate.register
def _(event: MemberAdded, _: None) -> Member:
    return Member(
        id=event.originator_id,
        version=1,
        account=event.account,
        mode=event.mode,
        email=event.email,
        name=event.name,
        created=event.timestamp,
        updated=event.timestamp,
    )


@mutate.register
def _(event: MemberKeyBound, state: Member) -> Member:
    return msgspec.structs.replace(
        state, version=event.originator_version, key_ids=(*state.key_ids, event.key_id)
    )


@mutate.register
def _(event: MemberRemoved, state: Member) -> Member:
    return msgspec.structs.replace(
        state, version=event.originator_version, removed=event.timestamp, updated=event.timestamp
    )


@mutate.register
def _(event: MemberEmailClaimed, _: EmailIndex | None) -> EmailIndex:
    return EmailIndex(id=event.originator_id, version=event.originator_version, member_id=event.member_id)


@mutate.register
def _(event: MemberEmailReleased, _: EmailIndex) -> EmailIndex:
    return EmailIndex(id=event.originator_id, version=event.originator_version, member_id=None)


# --- decisions ----------------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    text = email.strip().lower()
    if len(text) > 254 or not EMAIL.match(text):
        raise invalid([FieldError(field="email", message="Not an email address.")])
    return text


def add(
    member_id: uuid.UUID,
    account: str,
    mode: Mode,
    email: str,
    name: str,
    index: EmailIndex | None,
    now: datetime,
    actor: Actor | None,
) -> list[DomainEvent]:
    if index is not None and index.member_id is not None:
        raise DomainError("member_email_taken", f"A member with email {email!r} already exists.")
    if len(name) > MAX_NAME:
        raise invalid([FieldError(field="name", message=f"At most {MAX_NAME} characters.")])
    return [
        MemberAdded(
            originator_id=member_id,
            originator_version=1,
            timestamp=now,
            actor=actor,
            account=account,
            mode=mode,
            email=email,
            name=name.strip(),
        ),
        MemberEmailClaimed(
            originator_id=email_index_id(account, mode, email),
            originator_version=(index.version + 1) if index else 1,
            timestamp=now,
            member_id=member_id,
        ),
    ]


def remove(member: Member, index: EmailIndex | None, now: datetime, actor: Actor | None) -> list[DomainEvent]:
    """The member goes and its email is free again (the handler revokes its keys in the same save)."""
    events: list[DomainEvent] = [
        MemberRemoved(
            originator_id=member.id, originator_version=member.version + 1, timestamp=now, actor=actor
        )
    ]
    if index is not None and index.member_id == member.id:
        events.append(
            MemberEmailReleased(
                originator_id=index.id,
                originator_version=index.version + 1,
                timestamp=now,
                member_id=member.id,
            )
        )
    return events


def bind_key(member: Member, key_id: uuid.UUID, now: datetime, actor: Actor | None) -> MemberKeyBound:
    """A key bound to the member, recorded on the member so that a concurrent removal conflicts."""
    return MemberKeyBound(
        originator_id=member.id,
        originator_version=member.version + 1,
        timestamp=now,
        actor=actor,
        key_id=key_id,
    )
