"""The metrics consumers: `TELEMETRY` → requests and custom events, `EVENTS` → builds.

`metrics` (a durable pull consumer on `TELEMETRY`) gathers messages until it holds ~10,000 rows
or a second has passed since the first (whichever comes first; a quiet stream flushes at once),
decodes every record, inserts each table's rows in one column-oriented insert, and only then
acks. A crash between the insert and the ack redelivers the messages: for those JetStream marks
as delivered more than once, the store first reads which of their rows already exist (by
account, mode, time range and id) and inserts only the others, so counts stay exact without
`FINAL`. An insert that fails is nak'ed and comes back after a delay.

`metrics-builds` (on `EVENTS`, deployment events only) turns a deployment whose build just ended
into a `builds` row: `deployment.deploying` (the build succeeded), or `deployment.failed` /
`deployment.canceled` arriving while it built (its `build_finished_at` is the event's own time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

import msgspec
from nats.aio.msg import Msg

from stratus_bus import Bus
from stratus_contracts import metrics as c
from stratus_contracts import subjects
from stratus_contracts.deployments import Deployment
from stratus_contracts.events import Event
from stratus_kit import Consumer, Local
from stratus_metrics.store import Build, MetricsStore

log = logging.getLogger("stratus.metrics")

FLUSH_ROWS = 10_000
FLUSH_SECONDS = 1.0
# What a telemetry message costs in ack-pending slots: the gateway sends up to 1,000 records a
# message, so 64 messages a fetch is enough to reach FLUSH_ROWS under load.
BATCH = 64
_RESULTS = {
    "deployment.deploying": "succeeded",
    "deployment.failed": "failed",
    "deployment.canceled": "canceled",
}


def _store(local: Local) -> MetricsStore:
    return next(iter(local.partitions.values())).read_models["metrics"].store


class Decoded:
    """The rows of a gathered batch: fresh ones, and those of redelivered messages (to check)."""

    def __init__(self) -> None:
        self.requests: list[c.RequestRecord] = []
        self.requests_again: list[c.RequestRecord] = []
        self.events: list[c.EventRecord] = []
        self.events_again: list[c.EventRecord] = []
        self.rows = 0


class TelemetryConsumer(Consumer):
    def __init__(
        self, bus: Bus, store: MetricsStore, *, fetch_timeout: float = 1.0, ack_wait: float = 30.0
    ) -> None:
        super().__init__(
            bus,
            durable=c.CONSUMER,
            subject=c.TELEMETRY_SUBJECTS,
            handle=self._unused,
            description="request telemetry and custom events into ClickHouse (stratus-metrics)",
            batch=BATCH,
            fetch_timeout=fetch_timeout,
            ack_wait=ack_wait,
            stream=c.TELEMETRY_STREAM,
        )
        self.store = store
        self._requests = msgspec.msgpack.Decoder(c.RequestBatch)
        self._events = msgspec.msgpack.Decoder(c.EventBatch)
        self.inserted = 0  # rows, for the bench and the logs

    async def _unused(self, msgs: list[Msg]) -> Sequence[bool]:  # pull_once is ours
        raise NotImplementedError

    async def ensure(self) -> None:
        await self.bus.ensure_telemetry_stream()
        await super().ensure()

    def decode(self, msg: Msg, into: Decoded) -> None:
        again = msg.metadata.num_delivered > 1
        try:
            if msg.subject == c.REQUESTS_SUBJECT:
                records = self._requests.decode(msg.data).records
                (into.requests_again if again else into.requests).extend(records)
            elif msg.subject == c.EVENTS_SUBJECT:
                events = self._events.decode(msg.data).records
                (into.events_again if again else into.events).extend(events)
                records = events  # type: ignore[assignment]
            else:
                return
        except msgspec.DecodeError:
            # Not ours to store, and redelivering it would not help: acked and dropped.
            log.warning("skipping an undecodable telemetry message", extra={"subject": msg.subject})
            return
        into.rows += len(records)

    def write(self, batch: Decoded) -> int:
        written = self.store.insert_requests(batch.requests, batch.requests_again)
        return written + self.store.insert_events(batch.events, batch.events_again)

    async def pull_once(self) -> int:
        async with self.lock:
            if self.puller is None:
                await self.ensure()
            assert self.puller is not None
            msgs = await self.puller.fetch(self.batch, self.fetch_timeout)
            if not msgs:
                return 0
            batch = Decoded()
            for msg in msgs:
                self.decode(msg, batch)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + FLUSH_SECONDS
            # Gather more while more is there, up to FLUSH_ROWS or FLUSH_SECONDS: fewer, bigger
            # inserts (each makes a part ClickHouse merges later).
            while batch.rows < FLUSH_ROWS and (left := deadline - loop.time()) > 0:
                more = await self.puller.fetch(self.batch, min(left, 0.05))
                if not more:
                    break
                for msg in more:
                    self.decode(msg, batch)
                msgs += more
            try:
                self.inserted += await asyncio.to_thread(self.write, batch)
            except Exception:
                log.exception("telemetry insert failed; the batch comes back", extra={"messages": len(msgs)})
                for msg in msgs:
                    await msg.nak(delay=self.retry_delay)
                return 0
            # Only after the insert returned: a crash before this redelivers, and the store's
            # check of redelivered rows keeps them from counting twice.
            for msg in msgs:
                await msg.ack()
            self.progress.set()
            return len(msgs)


def build_of(event: Event[Deployment]) -> Build | None:
    """The build row a deployment event makes, or None (not the end of a build)."""
    result = _RESULTS.get(event.type)
    data = event.data
    started, finished = data.build_started_at, data.build_finished_at
    if result is None or started is None or finished is None or finished != data.updated:
        return None
    return Build(
        ts=finished,
        account=event.account,
        mode=event.mode,
        project=data.project,
        env=data.env,
        deployment_id=data.id,
        result=result,
        duration_s=max(0.0, (finished - started).total_seconds()),
    )


class BuildsConsumer(Consumer):
    def __init__(self, bus: Bus, store: MetricsStore) -> None:
        super().__init__(
            bus,
            durable=c.BUILDS_CONSUMER,
            subject=subjects.event("*", "*", "deployment", "*"),
            handle=self._handle,
            description="build durations into ClickHouse (stratus-metrics)",
        )
        self.store = store
        self._decoder = msgspec.json.Decoder(Event[Deployment])

    async def _handle(self, msgs: list[Msg]) -> list[bool]:
        fresh: list[Build] = []
        again: list[Build] = []
        for msg in msgs:
            try:
                event = self._decoder.decode(msg.data)
            except msgspec.DecodeError:
                log.warning("skipping an undecodable deployment event", extra={"subject": msg.subject})
                continue
            build = build_of(event)
            if build is not None:
                (again if msg.metadata.num_delivered > 1 else fresh).append(build)
        if fresh or again:
            await asyncio.to_thread(self.store.insert_builds, fresh, again)
        return [True] * len(msgs)


def telemetry_consumer(bus: Bus, local: Local) -> TelemetryConsumer:
    return TelemetryConsumer(bus, _store(local))


def builds_consumer(bus: Bus, local: Local) -> BuildsConsumer:
    return BuildsConsumer(bus, _store(local))


async def retention(bus: Bus, local: Local) -> None:
    """Drop the days past retention at start and once an hour (whole partitions, no deletes)."""
    store = _store(local)
    while True:
        try:
            dropped = await asyncio.to_thread(store.expire, datetime.now().astimezone())
            if dropped:
                log.info("metrics retention dropped partitions", extra={"partitions": dropped})
        except Exception:
            log.exception("metrics retention pass failed")
        await asyncio.sleep(3600)
