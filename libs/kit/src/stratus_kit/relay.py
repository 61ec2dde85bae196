"""The outbox relay: committed events → JetStream stream `EVENTS`, exactly once.

It reads the partition's notification log after its tracked position, publishes each public event
with `Nats-Msg-Id` = event id, and records the new position only after JetStream acknowledged the
whole batch. A crash between publish and record re-publishes; JetStream drops the duplicate by
its id (event ids derive from aggregate id and version, so a re-publish carries the same id).
So the position is recorded at most every `RECORD_EVERY` seconds (and on a clean stop): in
SQLite it is a write, with its fsync, that the partition's writer would otherwise wait behind,
and a crash costs only a re-publish of what JetStream then drops.

The notifications come from the partition's memory of what it committed and followed
(`Partition.entries_after`), and from the store only after a restart or when the relay fell
behind further than that memory reaches (and on every poll, for other replicas' commits).

The service's publisher maps a domain event and the aggregate's states right before and after it
to a public `Event` (or None for internal events). The relay keeps those states itself: it sees
every event of the partition in order, so it moves each aggregate's state forward from the
previous one and reads the store only for an aggregate it has not followed since it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError, Tracking

from stratus_bus import Bus
from stratus_contracts.events import CATALOGUE, Event, Mode
from stratus_contracts.ids import encode_id
from stratus_eventstore.model import DomainEvent, event_uuid
from stratus_kit.partition import Partition

log = logging.getLogger("stratus.relay")

TRACKING_NAME = "outbox"
BATCH = 256
MEMO = 4096
RECORD_EVERY = 0.25


# (domain event, state before it, state after it, the partition's mode) ->
# (the event's mode, its account, its data): identity's one partition holds both modes.
Data = Callable[[Any, Any, Any, Mode], tuple[Mode, str, Any]]


class Publisher:
    """Which domain events become which public events: `{DomainEventType: (event_type, data)}`,
    `event_type` from the contracts' catalogue and `data` building its account and payload."""

    def __init__(self, table: dict[type, tuple[Any, Data]]) -> None:
        self.table = table

    def publishes(self, event: object) -> bool:
        return type(event) in self.table

    def __call__(self, event: Any, before: Any, after: Any, mode: Mode) -> Event[Any] | None:
        entry = self.table.get(type(event))
        if entry is None:
            return None
        event_type, data = entry
        mode, account, payload = data(event, before, after, mode)
        return event_type.event(
            id=encode_id("evt", event_uuid(event.originator_id, event.originator_version)),
            created=event.timestamp,
            mode=mode,
            account=account,
            data=payload,
            actor=getattr(event, "actor", None),
        )


def chain(*publishers: Publisher) -> Publisher:
    """One publisher for a store shared by several aggregate families."""
    table: dict[type, Any] = {}
    for publisher in publishers:
        table.update(publisher.table)
    return Publisher(table)


class Relay:
    def __init__(
        self,
        partition: Partition,
        bus: Bus | None,
        publisher: Publisher,
        *,
        poll: float = 1.0,
    ) -> None:
        self.partition = partition
        self.bus = bus
        self.publisher = publisher
        self.poll = poll
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tracking = partition.store.tracking()
        self._encoder = msgspec.json.Encoder()
        self._states: OrderedDict[uuid.UUID, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._published = 0  # the position published up to, in memory
        self._recorded = 0  # the position recorded in the store
        self._recorded_at = 0.0

    def wake(self) -> None:
        """Publish soon (callable from any thread: the partition calls it after each commit)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wakeup.set)

    def position(self) -> int:
        return self._tracking.max_tracking_id(TRACKING_NAME) or 0

    def _around(self, event: DomainEvent) -> tuple[Any, Any]:
        """The aggregate's states right before and right after `event`."""
        aggregate_id, version = event.originator_id, event.originator_version
        before = self._states.pop(aggregate_id, None)
        if version == 1:
            before = None
        elif before is None or before.version != version - 1:
            before = self.partition.load(aggregate_id, version - 1)
        after = self.partition.project(before, [event])
        self._states[aggregate_id] = after
        while len(self._states) > MEMO:
            self._states.popitem(last=False)
        return before, after

    def from_memory(self, after: int) -> list[Any] | None:
        """The next batch from the partition's memory, if making it needs no store access (every
        state it needs follows from one this relay holds); None otherwise. Runs on the event
        loop: a relay that keeps up never hands its work to a thread."""
        entries = self.partition.entries_after(after, BATCH)
        if entries is None:
            return None
        with self._lock:
            states = self._states
            versions: dict[uuid.UUID, int] = {}  # what `_make` will have followed, as it goes
            for _, event in entries:
                aggregate, version = event.originator_id, event.originator_version
                held = versions.get(aggregate)
                if held is None and aggregate in states:
                    held = states[aggregate].version
                if held is None and not self.publisher.publishes(event):
                    continue  # an aggregate nobody publishes about: not followed
                if version != 1 and held != version - 1:
                    return None  # its state before this event is in the store only
                versions[aggregate] = version
        return self._make(entries)

    def read(
        self, after: int, from_store: bool = True
    ) -> list[tuple[int, str, Event[Any]] | tuple[int, None, None]]:
        """The next batch after `after`: (notification id, subject, public event) or, for an
        internal event, (notification id, None, None)."""
        entries = self.partition.entries_after(after, BATCH)
        if entries is None or (from_store and not entries):
            store = self.partition.store
            batch = store.recorder.select_notifications(after, BATCH, inclusive_of_start=False)
            entries = [(n.id, store.mapper.to_domain_event(n)) for n in batch]
        return self._make(entries)

    def _make(self, entries: list[tuple[int, Any]]) -> list[Any]:
        out: list[Any] = []
        with self._lock:
            for notification_id, event in entries or ():
                if not self.publisher.publishes(event):
                    if event.originator_id in self._states:
                        self._around(event)  # keep the followed state current
                    out.append((notification_id, None, None))
                    continue
                before, state = self._around(event)
                public = self.publisher(event, before, state, self.partition.name)  # type: ignore[arg-type]
                if public is None:
                    out.append((notification_id, None, None))
                    continue
                subject = CATALOGUE[public.type].subject(public.mode, public.account)
                out.append((notification_id, subject, public))
        return out

    def record(self, position: int) -> None:
        # IntegrityError: another replica's relay recorded this position (or a later one) first.
        with contextlib.suppress(IntegrityError):
            self._tracking.insert_tracking(Tracking(TRACKING_NAME, position))

    async def publish(self, batch: list[Any]) -> int:
        assert self.bus is not None
        publishes = [
            self.bus.publish_durably(subject, self._encoder.encode(event), event.id)
            for _, subject, event in batch
            if subject is not None
        ]
        # One connection keeps them in order; JetStream acknowledges each once it is stored.
        await asyncio.gather(*publishes)
        return len(publishes)

    async def publish_pending(self) -> int:
        """Publish everything committed after the recorded position, then record how far it got;
        return how many events were sent."""
        sent = await self._publish_batches(from_store=True)
        await self._record()
        return sent

    async def _publish_batches(self, from_store: bool) -> int:
        """Publish batches while there are any. With `from_store` false only what the partition
        holds in memory is looked at (a local commit woke us); the poll reads the store too, for
        what other replicas committed. The position is recorded now and then, not per batch."""
        loop = asyncio.get_running_loop()
        if not self._published:
            self._published = self._recorded = await asyncio.to_thread(self.position)
        sent = 0
        while True:
            batch = None if from_store else self.from_memory(self._published)
            if batch is None:
                batch = await asyncio.to_thread(self.read, self._published, from_store)
            if not batch:
                break
            sent += await self.publish(batch)
            self._published = batch[-1][0]
            # Only after JetStream acknowledged: a crash before recording re-publishes, deduplicated.
            if loop.time() - self._recorded_at >= RECORD_EVERY:
                await self._record()
        return sent

    async def _record(self) -> None:
        if self._published > self._recorded:
            position = self._published
            await asyncio.to_thread(self.record, position)
            self._recorded = position
            self._recorded_at = asyncio.get_running_loop().time()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        woken = False
        try:
            while True:
                self._wakeup.clear()
                try:
                    await self._publish_batches(from_store=not woken)
                    await self._record_later()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # NATS or the store is briefly away; the position is safe, so try again.
                    log.exception("relay pass failed; retrying")
                woken = await self._woken(self.poll)
        finally:
            # A clean stop records how far it got (a crash re-publishes that much instead).
            if self._published > self._recorded:
                with contextlib.suppress(Exception):
                    self.record(self._published)

    async def _record_later(self) -> None:
        """Record the position once things are quiet for a moment, not after every batch."""
        if self._published > self._recorded and not self._wakeup.is_set():
            loop = asyncio.get_running_loop()
            delay = RECORD_EVERY - (loop.time() - self._recorded_at)
            if delay > 0 and await self._woken(delay):
                return
            await self._record()

    async def _woken(self, timeout: float) -> bool:
        """Wait up to `timeout` for a wake-up; whether one came. (`asyncio.timeout`, not
        `wait_for`: on Python 3.11 `wait_for` can swallow a cancellation that arrives as the
        wait ends, and a stopping service would then wait on its relay.)"""
        try:
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()
        except TimeoutError:
            return False
        return True


__all__ = ["TRACKING_NAME", "Publisher", "Relay", "chain"]
