"""The audit consumer: JetStream `EVENTS` → the audit view, through the durable pull consumer `audit`.

Each fetched batch is written to the view in one transaction per mode file, and only then acked:
a crash in between redelivers the batch, and the event id (the view's primary key) makes the
second write a no-op. On start the consumer is reconciled with the view: when the durable
consumer has acked past what the view holds (the view file was deleted or lost), it is recreated
to start after the view's position, so the view re-reads the stream; retention is the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from stratus_audit.view import AuditView, Row, to_row
from stratus_bus import Bus
from stratus_contracts import subjects
from stratus_contracts.audit import CONSUMER, is_audited
from stratus_contracts.events import Event

log = logging.getLogger("stratus.audit")

STREAM = subjects.EVENTS_STREAM
RETRY_DELAY = 1.0


class ConsumerGone(Exception):
    """JetStream answered a pull with a 409 (the consumer was deleted, or similar): bind again."""


class Puller:
    """Fetches batches from a durable pull consumer into a callback subscription.

    nats-py's own `PullSubscription.fetch` takes messages off its queue without marking them
    done, so draining the connection on shutdown waits for them until the drain times out; a
    callback subscription drains at once. A fetch first asks for what is there (`no_wait`),
    then, if nothing was, waits up to `timeout` for one message; a message that arrives after
    its request timed out is kept for the next fetch, or redelivered after the ack wait.
    """

    def __init__(self, nc: NATS, stream: str, consumer: str) -> None:
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inbox = nc.new_inbox()
        self.queue: asyncio.Queue[Msg] = asyncio.Queue()
        self.sub: Any = None

    async def start(self) -> None:
        async def deliver(msg: Msg) -> None:
            self.queue.put_nowait(msg)

        self.sub = await self.nc.subscribe(self.inbox, cb=deliver)

    async def stop(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
            self.sub = None

    async def _ask(self, **request: Any) -> None:
        await self.nc.publish(self.subject, msgspec.json.encode(request), reply=self.inbox)

    @staticmethod
    def _status(msg: Msg) -> str | None:
        status = (msg.headers or {}).get("Status")
        if status == "409":
            raise ConsumerGone((msg.headers or {}).get("Description", "409"))
        return status

    def _queued(self, batch: int) -> list[Msg]:
        msgs: list[Msg] = []
        while len(msgs) < batch and not self.queue.empty():
            msg = self.queue.get_nowait()
            if self._status(msg) is None:
                msgs.append(msg)
        return msgs

    async def _next(self, timeout: float) -> Msg | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:
        msgs = self._queued(batch)
        if msgs:
            return msgs
        await self._ask(batch=batch, no_wait=True)
        while len(msgs) < batch:
            msg = await self._next(timeout)
            if msg is None or self._status(msg) is not None:
                break  # 404/408: nothing more right now
            msgs.append(msg)
        if msgs:
            return msgs
        await self._ask(batch=1, expires=int(timeout * 1e9))
        msg = await self._next(timeout + 1.0)
        return [msg] if msg is not None and self._status(msg) is None else []


class AuditConsumer:
    def __init__(
        self,
        bus: Bus,
        views: dict[str, AuditView],
        *,
        batch: int = 256,
        fetch_timeout: float = 1.0,
        ack_wait: float = 30.0,
    ) -> None:
        self.bus = bus
        self.js = bus.js
        self.views = views
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.ack_wait = ack_wait
        self.puller: Puller | None = None
        self.stream_created: str | None = None
        self._lock = asyncio.Lock()  # one batch at a time; a rebuild waits for the current batch
        self._progress = asyncio.Event()
        self._decoder = msgspec.json.Decoder(Event)

    # -- the durable consumer -------------------------------------------------------------

    async def position(self) -> int:
        """The stream sequence every mode's view has handled."""
        positions = [await asyncio.to_thread(v.position) for v in self.views.values()]
        return min(positions)

    async def ensure(self) -> None:
        """Create the durable consumer, or recreate it when the view lost what it had acked."""
        await self._unbind()
        info = await self.js.stream_info(STREAM)
        self.stream_created = info.created.isoformat() if info.created else None
        for view in self.views.values():
            known = await asyncio.to_thread(view.stream_created)
            recreated = self.stream_created is not None and known not in (None, self.stream_created)
            if recreated or await asyncio.to_thread(view.position) > info.state.last_seq:
                # A new stream numbers from 1 again; read it all (event ids dedupe the overlap).
                log.warning("EVENTS stream was recreated; re-reading it", extra={"mode": view.mode})
                await asyncio.to_thread(view.reset_position, self.stream_created)
        position = await self.position()
        try:
            current = await self.js.consumer_info(STREAM, CONSUMER)
        except nats.js.errors.NotFoundError:
            current = None
        acked = current.ack_floor.stream_seq if current is not None and current.ack_floor else 0
        if current is not None and acked > position:
            log.warning(
                "audit view is behind its consumer (view lost?): re-reading the stream",
                extra={"view_position": position, "ack_floor": acked},
            )
            await self.js.delete_consumer(STREAM, CONSUMER)
            current = None
        if current is None:
            await self.js.add_consumer(STREAM, self._config(position))
        self.puller = Puller(self.bus.nc, STREAM, CONSUMER)
        await self.puller.start()

    def _config(self, position: int) -> ConsumerConfig:
        start: dict[str, Any] = (
            {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": position + 1}
            if position
            else {"deliver_policy": DeliverPolicy.ALL}
        )
        return ConsumerConfig(
            name=CONSUMER,
            durable_name=CONSUMER,
            description="audit log view (stratus-audit)",
            filter_subject=subjects.EVENTS_SUBJECTS,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_ack_pending=4 * self.batch,
            **start,
        )

    async def _unbind(self) -> None:
        if self.puller is not None:
            await self.puller.stop()
            self.puller = None

    # -- reading ----------------------------------------------------------------------------

    def rows(self, msgs: list[Msg]) -> tuple[dict[str, list[Row]], int]:
        """The audit rows of a batch, by mode, and the highest stream sequence in it."""
        rows: dict[str, list[Row]] = {mode: [] for mode in self.views}
        position = 0
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            position = max(position, seq)
            try:
                event = self._decoder.decode(msg.data)
            except msgspec.DecodeError:
                # Not a public event: nothing to audit, and redelivering it would not help.
                log.warning("skipping an undecodable message", extra={"subject": msg.subject, "seq": seq})
                continue
            if is_audited(event.type) and event.mode in rows:
                rows[event.mode].append(to_row(event, seq))
        return rows, position

    def write(self, rows: dict[str, list[Row]], position: int) -> int:
        return sum(view.write(rows[mode], position, self.stream_created) for mode, view in self.views.items())

    async def handle(self, msgs: list[Msg]) -> int:
        """Write a batch, then ack it; return how many new audit rows it added."""
        rows, position = self.rows(msgs)
        new = await asyncio.to_thread(self.write, rows, position)
        # Only after the rows are committed: a crash before this line redelivers the batch.
        for msg in msgs:
            await msg.ack()
        self._progress.set()
        return new

    async def pull_once(self) -> int:
        """Fetch one batch (waiting up to `fetch_timeout` for it) and handle it."""
        async with self._lock:
            if self.puller is None:
                await self.ensure()
            assert self.puller is not None
            msgs = await self.puller.fetch(self.batch, self.fetch_timeout)
            return await self.handle(msgs) if msgs else 0

    async def run(self) -> None:
        nc = self.bus.nc
        while True:
            try:
                await self.pull_once()
            except asyncio.CancelledError:
                raise
            except ConsumerGone as exc:
                log.warning("audit consumer answered 409 (%s); binding again", exc)
                await self._unbind()
                await asyncio.sleep(RETRY_DELAY)
            except Exception:
                if nc.is_closed or nc.is_draining:
                    return  # the service is stopping; unacked messages are redelivered later
                # NATS or JetStream is briefly away, or the consumer was deleted: bind again.
                log.exception("audit consumer pass failed; retrying")
                await self._unbind()
                await asyncio.sleep(RETRY_DELAY)

    async def caught_up(self, target: int, timeout: float) -> None:
        """Wait until every view has handled the stream up to sequence `target`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self.position() < target:
            self._progress.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"audit view did not reach stream sequence {target}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), timeout=min(remaining, self.fetch_timeout))

    async def rebuild(self, timeout: float) -> dict[str, int]:
        """Drop every view and the durable consumer, then re-read the whole stream."""
        async with self._lock:
            await self._unbind()
            for view in self.views.values():
                await asyncio.to_thread(view.drop)
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.delete_consumer(STREAM, CONSUMER)
            target = (await self.js.stream_info(STREAM)).state.last_seq
            await self.ensure()
        await self.caught_up(target, timeout)
        return {mode: await asyncio.to_thread(view.count) for mode, view in self.views.items()}
