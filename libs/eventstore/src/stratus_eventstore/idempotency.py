"""At-most-once commands: a command that carries an Idempotency-Key is applied once per key.

The gateway puts the client's `Idempotency-Key` on `Caller.idempotency_key`. `AtMostOnce.wrap`
turns a command endpoint into one that

* answers a repeat of an applied command (same key, same fingerprint) with the reply it gave the
  first time, as `Replayed`, without deciding anything again;
* refuses the same key with another command (`idempotency_key_reused`);
* otherwise runs the handler and records, in the **same atomic save** as the command's events,
  an index aggregate (`index_uuid("idempotency", account, mode, key)`) holding the command's
  subject, fingerprint and encoded reply. A concurrent duplicate therefore loses the save on the
  index's version, looks again and replays the winner's reply.

Handlers save inside their decide step (`part.save(events)`), before they build their reply, and
the reply must be in that save. So a handler's save method is marked `@deferrable`: while a
wrapped command runs, the save only hands its events (and itself) over to the wrapper, the
handler builds its reply from the events as usual, and the wrapper then calls the real save with
the events plus the index record. One consequence, checked: a command handler saves at most once.

Records older than `RETENTION` (24 h, as the gateway's) are expired: the key may then be used
afresh, and the new record is the index's next version.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import msgspec
from eventsourcing.persistence import IntegrityError

from stratus_bus.bus import Replayed
from stratus_contracts.errors import DomainError
from stratus_eventstore.model import DomainEvent, index_uuid, utcnow
from stratus_eventstore.store import CONFLICT_RETRIES, Store

RETENTION = timedelta(hours=24)
C = TypeVar("C")
R = TypeVar("R")
Save = Callable[[Any, list[Any]], None]
_encoder = msgspec.msgpack.Encoder()


class CommandRecorded(DomainEvent, frozen=True, kw_only=True):
    """Index event: the command applied under an Idempotency-Key, and its encoded reply."""

    subject: str
    fingerprint: str
    reply: bytes  # the handler's result, MessagePack


def record_id(account: str, mode: str, key: str) -> uuid.UUID:
    return index_uuid("idempotency", account, mode, key)


def fingerprint(subject: str, command: Any, volatile: tuple[str, ...] = ()) -> str:
    """What makes two commands "the same": subject, calling key and every field but the caller's
    per-request details and the `volatile` ones (values the gateway generates afresh on each
    attempt, such as a new key's secret hash)."""
    caller = command.caller
    stable = msgspec.structs.replace(command, caller=None, **dict.fromkeys(volatile))
    return hashlib.sha256(_encoder.encode((subject, caller.key_id, stable))).hexdigest()


class _Pending:
    """A deferred save: the events a handler saved, and the save that will commit them."""

    def __init__(self) -> None:
        self.save: Callable[[list[Any]], None] | None = None
        self.events: list[Any] = []


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar("stratus_pending", default=None)


def deferrable(save: Save) -> Save:
    """Mark a handler's `save(self, events)`: inside `AtMostOnce` it defers to the wrapper, which
    commits the events together with the command's index record. Elsewhere it is unchanged."""

    @functools.wraps(save)
    def wrapper(self: Any, events: list[Any]) -> None:
        pending = _pending.get()
        if pending is None:
            return save(self, events)
        if not events:
            return None
        if pending.save is not None:
            raise RuntimeError("a command handler under AtMostOnce may save only once")
        pending.save = functools.partial(save, self)
        pending.events = list(events)
        return None

    return wrapper


class AtMostOnce:
    """Wraps command endpoints so that commands carrying an Idempotency-Key apply at most once.

    `store_for(command)` names the store the handler saves into (a service may have one per mode).
    """

    def __init__(
        self,
        store_for: Callable[[Any], Store],
        *,
        clock: Callable[[], datetime] = utcnow,
        retention: timedelta = RETENTION,
    ) -> None:
        self.store_for = store_for
        self.clock = clock
        self.retention = retention

    def _latest(self, store: Store, index: uuid.UUID) -> CommandRecorded | None:
        return next(iter(store.events.get(index, desc=True, limit=1)), None)  # type: ignore[arg-type]

    def _live(self, record: CommandRecorded | None) -> CommandRecorded | None:
        if record is None or self.clock() - record.timestamp > self.retention:
            return None
        return record

    def _replay(self, record: CommandRecorded, fp: str) -> Replayed:
        if record.fingerprint != fp:
            raise DomainError(
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request; use a new key for a new request.",
            )
        return Replayed(msgspec.Raw(record.reply))

    def wrap(
        self,
        subject: str,
        handler: Callable[[C], Awaitable[R]],
        *,
        volatile: tuple[str, ...] = (),
    ) -> Callable[[C], Awaitable[R | Replayed]]:
        """`handler` (an async command handler whose store calls run in a worker thread, saving
        through a `@deferrable` save) made at-most-once for commands with an Idempotency-Key."""

        async def endpoint(command: C) -> R | Replayed:
            caller = getattr(command, "caller", None)
            key = caller.idempotency_key if caller is not None else None
            if not key:
                return await handler(command)
            store = self.store_for(command)
            index = record_id(caller.account_id, caller.mode, key)
            fp = fingerprint(subject, command, volatile)
            for _ in range(CONFLICT_RETRIES):
                latest = await asyncio.to_thread(self._latest, store, index)
                if (live := self._live(latest)) is not None:
                    return self._replay(live, fp)
                pending = _Pending()
                token = _pending.set(pending)
                try:
                    result = await handler(command)
                except DomainError:
                    # A duplicate that committed meanwhile makes this attempt fail (a name is
                    # taken, say): its reply is the answer, not our error.
                    if (live := self._live(await asyncio.to_thread(self._latest, store, index))) is not None:
                        return self._replay(live, fp)
                    raise
                finally:
                    _pending.reset(token)
                if pending.save is None:
                    return result  # nothing changed, so nothing to apply twice
                record = CommandRecorded(
                    originator_id=index,
                    originator_version=latest.originator_version + 1 if latest else 1,
                    timestamp=self.clock(),
                    subject=subject,
                    fingerprint=fp,
                    reply=_encoder.encode(result),
                )
                try:
                    await asyncio.to_thread(pending.save, [*pending.events, record])
                except IntegrityError:
                    continue  # a duplicate (or another writer) won the race: look again
                return result
            raise IntegrityError(f"{subject}: still conflicting after {CONFLICT_RETRIES} attempts")

        return endpoint


__all__ = ["RETENTION", "AtMostOnce", "CommandRecorded", "deferrable", "fingerprint", "record_id"]
