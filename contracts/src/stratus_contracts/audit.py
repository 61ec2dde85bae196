"""Audit service messages: the audit-log query and the audit event it returns, the event feed
(every public event of an account and mode, as published), and the rebuild.

The audit service keeps the history of the `EVENTS` stream: the audit log is the part of it that
is audit-relevant, shown as `audit_event`s; the event feed (`GET /v1/events`) is all of it, as
the events themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec

from stratus_contracts.auth import Caller
from stratus_contracts.events import Event, Mode
from stratus_contracts.messages import Command, Query
from stratus_contracts.reply import RebuildResult

SERVICE = "audit"
T = TypeVar("T")
# The durable JetStream consumer the audit service reads `EVENTS` with: each replica has its
# own (`audit`, `audit-2`, …), as it has its own read-model files, and reads the whole stream.
CONSUMER = "audit"
# A replica told to rebuild tells the others on this core subject, so every replica rebuilds.
REBUILD_PEERS_SUBJECT = "audit.rebuild.peers"


def consumer_name(replica: str | None) -> str:
    return CONSUMER if replica is None else f"{CONSUMER}-{replica}"


# Which public event types are audit-relevant: every key, member and account change, every team
# access change on a project, every secret reveal and every short-lived token issued.
AUDITED_PREFIXES = ("key.", "member.", "account.", "project.member_")
AUDITED_TYPES = frozenset({"secret.revealed", "token.created"})


def is_audited(event_type: str) -> bool:
    return event_type in AUDITED_TYPES or event_type.startswith(AUDITED_PREFIXES)


Limit = Annotated[int, msgspec.Meta(ge=1, le=100)]


class AuditCommand(Command[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


class AuditQuery(Query[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


class AuditActor(msgspec.Struct, frozen=True, kw_only=True):
    """Who made the change; every field is null when the event has no actor (bootstrap, operator)."""

    key_id: str | None = None
    member_id: str | None = None
    token_id: str | None = None
    ip: str | None = None
    request_id: str | None = None


class AuditResource(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    id: str | None = None


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the event's id, `evt_…`
    object: Literal["audit_event"] = "audit_event"
    action: str  # the event type, e.g. `key.revoked`
    created: datetime
    mode: Mode
    actor: AuditActor
    resource: AuditResource
    data: dict[str, Any]  # the resource after the change (secrets never appear here)


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[AuditEvent]
    has_more: bool
    next_cursor: str | None = None


class ListAuditEvents(AuditQuery[AuditPage], frozen=True, kw_only=True):
    """Newest first, in the caller's account and mode only.

    `actor` matches the acting key, member or token id; `action` is an exact event type
    (`key.created`) or a prefix ending in `.` or `*` (`key.`, `project.member_*`); `resource`
    matches the event's resource id or any id the event refers to (e.g. the project of a
    `project.member_added`); `created_gte <= created < created_lt`."""

    caller: Caller
    limit: Limit = 20
    cursor: str | None = None
    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Event[dict[str, Any]]]
    has_more: bool
    next_cursor: str | None = None
    last_id: str | None = None  # the newest event's id in this page (the SSE resume point)


class ListEvents(AuditQuery[EventPage], frozen=True, kw_only=True):
    """The account's events in the caller's mode: newest first, or with `after` (an event id) the
    ones published after it, oldest first (a live feed's next page). `type` is an exact type or
    a prefix ending in `.` or `*`; `project` keeps a project's events; `created_gte <= created <
    created_lt`. A key restricted to projects sees only their events."""

    caller: Caller
    limit: Limit = 20
    cursor: str | None = None
    after: str | None = None
    type: str | None = None
    project: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


class GetEvent(AuditQuery[Event[dict[str, Any]]], frozen=True, kw_only=True):
    caller: Caller
    event_id: str


def events_subject(mode: str, account: str) -> str:
    """Core NATS subject on which the audit service says "new events" for one account and mode
    once it has stored them (no data: a follower reads them with `ListEvents`)."""
    return f"sig.audit.events.{mode}.{account}"


class RebuildReadModels(AuditCommand[RebuildResult], frozen=True, kw_only=True):
    """Drop the audit read models and the durable consumer, then re-read the whole stream
    (`stratus rebuild audit`); answers once the read models have reached the stream's end."""
