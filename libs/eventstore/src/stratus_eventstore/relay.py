"""The outbox relay: committed events → JetStream stream `EVENTS`, exactly once.

It reads the store's notification log after its tracked position, publishes each public event
with `Nats-Msg-Id` = event id, and records the new position only after JetStream acknowledged.
A crash between publish and record re-publishes; JetStream drops the duplicate by its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import msgspec
from eventsourcing.persistence import IntegrityError, Notification, Tracking
from nats.js import JetStreamContext

from stratus_contracts.events import Event
from stratus_eventstore.store import Store

log = logging.getLogger("stratus.relay")

# (store, domain event) -> (subject, public event) or None for internal events.
Publisher = Callable[[Store, object], "tuple[str, Event] | None"]
TRACKING_NAME = "outbox"
BATCH = 256


class Relay:
    def __init__(self, store: Store, js: JetStreamContext, publisher: Publisher, *, poll: float = 1.0):
        self.store = store
        self.js = js
        self.publisher = publisher
        self.poll = poll
        self.wakeup = asyncio.Event()
        self._tracking = store.tracking()
        self._encoder = msgspec.json.Encoder()

    def position(self) -> int:
        return self._tracking.max_tracking_id(TRACKING_NAME) or 0

    def read(self, after: int) -> list[tuple[Notification, tuple[str, Event] | None]]:
        """The next batch of notifications after `after`, each with its public event (or None)."""
        batch = self.store.recorder.select_notifications(after, BATCH, inclusive_of_start=False)
        return [(n, self.publisher(self.store, self.store.mapper.to_domain_event(n))) for n in batch]

    def record(self, position: int) -> None:
        # IntegrityError: another replica's relay recorded this position (or a later one) first.
        with contextlib.suppress(IntegrityError):
            self._tracking.insert_tracking(Tracking(TRACKING_NAME, position))

    async def publish(self, batch: list[tuple[Notification, tuple[str, Event] | None]]) -> int:
        sent = 0
        for _, public in batch:
            if public is not None:
                subject, event = public
                await self.js.publish(subject, self._encoder.encode(event), headers={"Nats-Msg-Id": event.id})
                sent += 1
        return sent

    async def publish_pending(self) -> int:
        """Publish everything committed after the tracked position; return how many were sent."""
        sent = 0
        while True:
            batch = await asyncio.to_thread(self.read, await asyncio.to_thread(self.position))
            if not batch:
                return sent
            sent += await self.publish(batch)
            # Only after JetStream acknowledged: a crash before this line re-publishes, deduplicated.
            await asyncio.to_thread(self.record, batch[-1][0].id)

    async def run(self) -> None:
        while True:
            self.wakeup.clear()
            try:
                await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                # NATS or the store is briefly away; the position is safe, so try again.
                log.exception("relay pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=self.poll)
