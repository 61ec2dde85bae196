"""Snapshots: an aggregate's state at a version, so a long history loads without replaying it.

A snapshot is a `Snapshot` event in the library's snapshot store, holding the state as
MessagePack with its type (`topic`) and a fingerprint of that type's shape (`schema`). Code that
changes a state's fields changes the fingerprint, and a snapshot of the old shape is ignored
(the aggregate is replayed from its events instead), so snapshots never need migrating.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import msgspec
from eventsourcing.utils import get_topic, resolve_topic

from stratus_eventstore.model import DomainEvent

_encoder = msgspec.msgpack.Encoder()


class Snapshot(DomainEvent, frozen=True, kw_only=True):
    topic: str  # the state's type
    schema: str  # fingerprint of that type's fields when the snapshot was taken
    state: bytes  # the state, MessagePack


@functools.cache
def schema_of(state_type: type) -> str:
    shape = msgspec.json.encode(msgspec.json.schema(state_type))
    return hashlib.sha256(shape).hexdigest()[:16]


def take(state: Any) -> Snapshot:
    """A snapshot of `state` (a msgspec Struct with `id` and `version`)."""
    return Snapshot(
        originator_id=state.id,
        originator_version=state.version,
        topic=get_topic(type(state)),
        schema=schema_of(type(state)),
        state=_encoder.encode(state),
    )


def restore(snapshot: Snapshot) -> Any | None:
    """The state a snapshot holds, or None when its type's shape has changed since."""
    try:
        state_type = resolve_topic(snapshot.topic)
    except Exception:  # a type that was renamed or removed: replay instead
        return None
    if schema_of(state_type) != snapshot.schema:
        return None
    return msgspec.msgpack.decode(snapshot.state, type=state_type)
