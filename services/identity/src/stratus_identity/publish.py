"""Which identity events become public events: accounts, keys and members, never hashes.

A public event carries the resource as it was right after the event, and the actor who caused
it. Every change to a key publishes a `key.*` event whose `data.id` is the key id: gateways evict
their cached principal of that key on it (a plan change marks each of the account's keys for
exactly this reason).
"""

from __future__ import annotations

from typing import Any

import msgspec

from stratus_contracts import subjects
from stratus_contracts.events import Event
from stratus_contracts.ids import encode_id
from stratus_eventstore.model import DomainEvent, event_uuid
from stratus_eventstore.store import Store
from stratus_identity import domain
from stratus_identity.views import account_view, key_view, member_view

_KEY_EVENTS = {
    domain.KeyCreated: "created",
    domain.KeyUpdated: "updated",
    domain.KeyPlanChanged: "updated",
    domain.KeyRotated: "rotated",
    domain.KeyRevoked: "revoked",
}
_MEMBER_EVENTS = {domain.MemberAdded: "created", domain.MemberRemoved: "deleted"}
_ACCOUNT_EVENTS = {domain.AccountCreated: "created", domain.AccountPlanChanged: "updated"}
# Read-time facts of a key view that mean nothing in an event.
_READ_TIME = ("age_seconds", "last_used")


def _state(store: Store, event: DomainEvent) -> Any:
    return store.repository.get(
        event.originator_id, version=event.originator_version, projector_func=domain.project
    )


def to_public(store: Store, event: DomainEvent) -> tuple[str, Event] | None:
    event_type = type(event)
    data: dict[str, Any]
    if event_type in _ACCOUNT_EVENTS:
        account = encode_id("acct", event.originator_id)
        data = msgspec.to_builtins(account_view(_state(store, event)))
        # Accounts span both modes; their lifecycle events are published in live mode.
        mode, kind, name = "live", "account", _ACCOUNT_EVENTS[event_type]
    elif event_type in _KEY_EVENTS:
        key = _state(store, event)
        account, mode, kind, name = key.account, key.mode, "key", _KEY_EVENTS[event_type]
        data = msgspec.to_builtins(key_view(key, event.timestamp))
        for field in _READ_TIME:
            data.pop(field, None)
    elif event_type in _MEMBER_EVENTS:
        member = _state(store, event)
        account, mode, kind, name = member.account, member.mode, "member", _MEMBER_EVENTS[event_type]
        data = msgspec.to_builtins(member_view(member))
    else:
        return None  # index, marker and binding events are internal
    public = Event(
        id=encode_id("evt", event_uuid(event.originator_id, event.originator_version)),
        type=f"{kind}.{name}",
        created=event.timestamp,
        mode=mode,
        account=account,
        data=data,
        actor=getattr(event, "actor", None),
    )
    return subjects.event(mode, account, kind, name), public
