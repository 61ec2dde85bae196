"""The outbox relay: committed events → JetStream stream `EVENTS`, exactly once.

It reads the partition's notification log after its tracked position, publishes each public event
with `Nats-Msg-Id` = event id, and records the new position only after JetStream acknowledged the
whole batch. A crash between publish and record re-publishes; JetStream drops the duplicate by
its id (event ids derive from aggregate id and version, so a re-publish carries the same id).

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
from nats.js import JetStreamContext

from stratus_contracts.events import CATALOGUE, Event, Mode
from stratus_contracts.ids import encode_id
from stratus_eventstore.model import DomainEvent, event_uuid
from stratus_kit.partition import Partition

log = logging.getLogger("stratus.relay")

TRACKING_NAME = "outbox"
BATCH = 256
MEMO = 4096


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
        js: JetStreamContext,
        publisher: Publisher,
        *,
        poll: float = 1.0,
    ) -> None:
        self.partition = partition
        self.js = js
        self.publisher = publisher
        self.poll = poll
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tracking = partition.store.tracking()
        self._encoder = msgspec.json.Encoder()
        self._states: OrderedDict[uuid.UUID, Any] = OrderedDict()
        self._lock = threading.Lock()

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

    def read(self, after: int) -> list[tuple[int, str, Event[Any]] | tuple[int, None, None]]:
        """The next batch after `after`: (notification id, subject, public event) or, for an
        internal event, (notification id, None, None)."""
        store = self.partition.store
        batch = store.recorder.select_notifications(after, BATCH, inclusive_of_start=False)
        out: list[Any] = []
        with self._lock:
            for notification in batch:
                event = store.mapper.to_domain_event(notification)
                if not self.publisher.publishes(event):
                    if event.originator_id in self._states:
                        self._around(event)  # keep the followed state current
                    out.append((notification.id, None, None))
                    continue
                before, after = self._around(event)
                public = self.publisher(event, before, after, self.partition.name)  # type: ignore[arg-type]
                if public is None:
                    out.append((notification.id, None, None))
                    continue
                subject = CATALOGUE[public.type].subject(public.mode, public.account)
                out.append((notification.id, subject, public))
        return out

    def record(self, position: int) -> None:
        # IntegrityError: another replica's relay recorded this position (or a later one) first.
        with contextlib.suppress(IntegrityError):
            self._tracking.insert_tracking(Tracking(TRACKING_NAME, position))

    async def publish(self, batch: list[Any]) -> int:
        publishes = [
            self.js.publish(subject, self._encoder.encode(event), headers={"Nats-Msg-Id": event.id})
            for _, subject, event in batch
            if subject is not None
        ]
        # One connection keeps them in order; JetStream acknowledges each once it is stored.
        await asyncio.gather(*publishes)
        return len(publishes)

    async def publish_pending(self) -> int:
        """Publish everything committed after the tracked position; return how many were sent."""
        sent = 0
        while True:
            batch = await asyncio.to_thread(self.read, await asyncio.to_thread(self.position))
            if not batch:
                return sent
            sent += await self.publish(batch)
            # Only after JetStream acknowledged: a crash before this line re-publishes, deduplicated.
            await asyncio.to_thread(self.record, batch[-1][0])

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            try:
                await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                # NATS or the store is briefly away; the position is safe, so try again.
                log.exception("relay pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll)


__all__ = ["TRACKING_NAME", "Publisher", "Relay", "chain"]
