"""Durable JetStream consumers: a service's reaction to events, acked only after its own effect.

`Consumer` binds (creating on first start) a durable *pull* consumer on the `EVENTS` stream, so
every replica of a service fetches from the same consumer and each event is handled by one of
them. It hands each fetched batch to the service's `handle(msgs)`, which returns, per message,
whether its effect is durable (committed); those are acked, the others are nak'ed and come back
after `retry_delay`. A crash before the ack redelivers: handlers must find a redelivered event's
effect already there (event ids, versions or "nothing left to do" make them idempotent).

`position`, when given, is the highest stream sequence whose effect the service already holds
(a read model built from the stream records it): when the durable consumer has acked beyond it
(the read model was lost), the consumer is recreated to start right after it, so the effect is
rebuilt from the stream.

`ready_when_caught_up`: the service answers no request before this consumer has handled what
the stream held when it started (`catch_up`) — for a replica whose read model is its own and
may start empty (the audit service), so that no replica answers from a view that is behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from stratus_bus import Bus
from stratus_contracts import subjects

log = logging.getLogger("stratus.kit.consumer")

Handle = Callable[[list[Msg]], Awaitable[Sequence[bool]]]


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
        # asyncio.timeout, not wait_for: on Python 3.11 a wait_for cancelled as it ends can lose
        # the message it took off the queue, or swallow the cancellation.
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
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


class Consumer:
    def __init__(
        self,
        bus: Bus,
        *,
        durable: str,
        subject: str,
        handle: Handle,
        description: str,
        position: Callable[[], Awaitable[int]] | None = None,
        batch: int = 256,
        fetch_timeout: float = 1.0,
        ack_wait: float = 30.0,
        retry_delay: float = 1.0,
        stream: str = subjects.EVENTS_STREAM,
        ready_when_caught_up: bool = False,
    ) -> None:
        self.bus = bus
        self.js = bus.js
        self.durable = durable
        self.subject = subject
        self.handle = handle
        self.description = description
        self.position = position
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.ack_wait = ack_wait
        self.retry_delay = retry_delay
        self.stream = stream
        self.ready_when_caught_up = ready_when_caught_up
        self.puller: Puller | None = None
        self.lock = asyncio.Lock()  # one batch at a time; a rebuild waits for the current batch
        self.progress = asyncio.Event()  # set after every handled batch

    def _config(self, after: int) -> ConsumerConfig:
        start: dict[str, Any] = (
            {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": after + 1}
            if after
            else {"deliver_policy": DeliverPolicy.ALL}
        )
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            description=self.description,
            filter_subject=self.subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_ack_pending=4 * self.batch,
            **start,
        )

    async def ensure(self) -> None:
        """Create the durable consumer, or recreate it when it cannot serve us as it is: it was
        made as a push consumer (before the kit), or it acked past what `position` holds."""
        await self.unbind()
        position = await self.position() if self.position is not None else 0
        try:
            current = await self.js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            current = None
        if current is not None:
            acked = current.ack_floor.stream_seq if current.ack_floor else 0
            if current.config.deliver_subject:
                log.warning("recreating a push consumer as a pull consumer", extra={"consumer": self.durable})
                await self.js.delete_consumer(self.stream, self.durable)
                current = None
            elif self.position is not None and acked > position:
                log.warning(
                    "a consumer's effect is behind its ack floor (lost?): re-reading the stream",
                    extra={"consumer": self.durable, "position": position, "ack_floor": acked},
                )
                await self.js.delete_consumer(self.stream, self.durable)
                current = None
        if current is None:
            await self.js.add_consumer(self.stream, self._config(position))
        self.puller = Puller(self.bus.nc, self.stream, self.durable)
        await self.puller.start()

    async def catch_up(self, report_every: float = 10.0) -> None:
        """Wait until the durable consumer has nothing pending: every message the stream held
        (that its filter takes) has been handled and acked. Asked of the consumer, not of the
        stream's last sequence, which purged or filtered-out messages would keep out of reach."""
        loop = asyncio.get_running_loop()
        started = reported = loop.time()
        while True:
            info = await self.bus.settled(lambda: self.js.consumer_info(self.stream, self.durable))
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            if loop.time() - reported >= report_every:
                reported = loop.time()
                log.info(
                    "catching up with the stream before answering requests",
                    extra={
                        "consumer": self.durable,
                        "pending": info.num_pending,
                        "after_s": round(reported - started),
                    },
                )
            self.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.wait(), self.fetch_timeout)

    async def unbind(self) -> None:
        if self.puller is not None:
            await self.puller.stop()
            self.puller = None

    async def delete(self) -> None:
        """Forget the durable consumer (a rebuild starts it again from the beginning)."""
        await self.unbind()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self.js.delete_consumer(self.stream, self.durable)

    async def pull_once(self) -> int:
        """Fetch one batch (waiting up to `fetch_timeout` for it), handle and ack it."""
        async with self.lock:
            if self.puller is None:
                await self.ensure()
            assert self.puller is not None
            msgs = await self.puller.fetch(self.batch, self.fetch_timeout)
            if not msgs:
                return 0
            outcomes = await self.handle(msgs)
            # Only after the effect is durable: a crash before this line redelivers the batch.
            for msg, done in zip(msgs, outcomes, strict=True):
                if done:
                    await msg.ack()
                else:
                    await msg.nak(delay=self.retry_delay)
            self.progress.set()
            return len(msgs)

    async def run(self) -> None:
        nc = self.bus.nc
        while True:
            try:
                await self.pull_once()
            except asyncio.CancelledError:
                raise
            except ConsumerGone as exc:
                log.warning(
                    "consumer answered 409 (%s); binding again", exc, extra={"consumer": self.durable}
                )
                await self.unbind()
                await asyncio.sleep(self.retry_delay)
            except Exception:
                if nc.is_closed or nc.is_draining:
                    return  # the service is stopping; unacked messages are redelivered later
                # NATS or JetStream is briefly away, or the consumer was deleted: bind again.
                log.exception("consumer pass failed; retrying", extra={"consumer": self.durable})
                await self.unbind()
                await asyncio.sleep(self.retry_delay)
