"""At-most-once commands: a command that carries an Idempotency-Key is applied once per key.

The gateway puts the client's `Idempotency-Key` on `Caller.idempotency_key`. The registry, when
it decides such a command,

* answers a repeat of an applied command (same key, same fingerprint) with the reply it gave the
  first time, as `Replayed`, without deciding anything again;
* refuses the same key with another command (`idempotency_key_reused`);
* otherwise decides it and adds to its events an index record (`record_id(account, mode, key)`)
  holding the command's subject, fingerprint and encoded reply, committed in the **same
  transaction** as the command's events. A concurrent duplicate in the same batch finds the
  record staged; one on another replica loses the commit on the record's version, looks again and
  replays the winner's reply.

Records older than `RETENTION` (24 h, as the gateway's) are expired: the key may then be used
afresh, and the new record is the index's next version.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from functools import singledispatch
from typing import Any

import msgspec
from eventsourcing.utils import register_topic

from stratus_bus import Replayed
from stratus_contracts.errors import DomainError
from stratus_eventstore.model import DomainEvent, index_uuid

RETENTION = timedelta(hours=24)
_encoder = msgspec.msgpack.Encoder()


class CommandRecorded(DomainEvent, frozen=True, kw_only=True):
    """Index event: the command applied under an Idempotency-Key, and its encoded reply."""

    subject: str
    fingerprint: str
    reply: bytes  # the handler's result, MessagePack


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """The index aggregate: the newest command recorded under one key."""

    id: uuid.UUID
    version: int
    recorded: datetime
    subject: str
    fingerprint: str
    reply: bytes


# Recorded before the service kit existed, under the event store package's name.
register_topic("stratus_eventstore.idempotency:CommandRecorded", CommandRecorded)


@singledispatch
def mutate(event: DomainEvent, state: object) -> object:
    raise NotImplementedError(type(event).__name__)


@mutate.register
def _(event: CommandRecorded, _: object) -> Record:
    return Record(
        id=event.originator_id,
        version=event.originator_version,
        recorded=event.timestamp,
        subject=event.subject,
        fingerprint=event.fingerprint,
        reply=event.reply,
    )


def key_of(command: Any) -> str | None:
    caller = getattr(command, "caller", None)
    return caller.idempotency_key if caller is not None else None


def record_id(account: str, mode: str, key: str) -> uuid.UUID:
    return index_uuid("idempotency", account, mode, key)


def record_id_of(command: Any) -> uuid.UUID:
    caller = command.caller
    return record_id(caller.account_id, caller.mode, caller.idempotency_key)


def fingerprint(command: Any) -> str:
    """What makes two commands "the same": subject, calling key and every field but the caller's
    per-request details and the message type's `volatile` ones (values the gateway generates
    afresh on each attempt, such as a new key's secret hash)."""
    caller = command.caller
    stable = msgspec.structs.replace(command, caller=None, **dict.fromkeys(type(command).volatile))
    return hashlib.sha256(_encoder.encode((type(command).subject, caller.key_id, stable))).hexdigest()


def live(record: Any, now: datetime, retention: timedelta = RETENTION) -> Record | None:
    if not isinstance(record, Record) or now - record.recorded > retention:
        return None
    return record


def replay(record: Record, command: Any) -> Replayed:
    if record.fingerprint != fingerprint(command):
        raise DomainError(
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request; use a new key for a new request.",
        )
    return Replayed(msgspec.Raw(record.reply))


def recorded(index: Any, command: Any, result: Any, now: datetime) -> CommandRecorded:
    """The index event recording `command`'s `result` (the index's next version)."""
    return CommandRecorded(
        originator_id=record_id_of(command),
        originator_version=index.version + 1 if isinstance(index, Record) else 1,
        timestamp=now,
        subject=type(command).subject,
        fingerprint=fingerprint(command),
        reply=_encoder.encode(result),
    )


__all__ = [
    "RETENTION",
    "CommandRecorded",
    "Record",
    "fingerprint",
    "key_of",
    "live",
    "record_id",
    "recorded",
    "replay",
]
