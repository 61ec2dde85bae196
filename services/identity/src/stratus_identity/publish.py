"""Which identity events become public events: accounts and keys, never hashes."""

from __future__ import annotations

import msgspec

from stratus_contracts import subjects
from stratus_contracts.events import Event
from stratus_contracts.ids import encode_id
from stratus_eventstore.model import DomainEvent, event_uuid
from stratus_eventstore.store import Store
from stratus_identity import domain
from stratus_identity.handlers import key_view


def to_public(store: Store, event: DomainEvent) -> tuple[str, Event] | None:
    event_id = encode_id("evt", event_uuid(event.originator_id, event.originator_version))
    match event:
        case domain.AccountCreated():
            account = encode_id("acct", event.originator_id)
            data = {"id": account, "object": "account", "name": event.name}
            # Accounts span both modes; their lifecycle events are published in live mode.
            mode, kind, name = "live", "account", "created"
        case domain.KeyCreated() | domain.KeyRevoked():
            key = store.repository.get(
                event.originator_id, version=event.originator_version, projector_func=domain.project
            )
            account, mode, kind = key.account, key.mode, "key"
            name = "created" if isinstance(event, domain.KeyCreated) else "revoked"
            data = msgspec.to_builtins(key_view(key))
        case _:
            return None
    public = Event(
        id=event_id,
        type=f"{kind}.{name}",
        created=event.timestamp,
        mode=mode,
        account=account,
        data=data,
    )
    return subjects.event(mode, account, kind, name), public
