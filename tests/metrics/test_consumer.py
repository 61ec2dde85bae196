"""The telemetry consumer on a real nats-server and real chDB: batches become rows; a crash
between the insert and the ack redelivers the batch, which is not counted twice."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import msgspec
import nats
import pytest

from stratus_bus import Bus
from stratus_contracts import metrics as c
from stratus_metrics.consumers import Decoded, TelemetryConsumer
from stratus_metrics.store import MetricsStore
from stratus_testing import NatsServer, wait_for


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, name="metrics-test")
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await bus.js.delete_stream(c.TELEMETRY_STREAM)
    yield bus
    await bus.drain()


class CrashAfterInsert(TelemetryConsumer):
    """Dies the way a kill -9 between the insert and the ack would: the rows are in, the
    messages are never acked."""

    crashes = 1

    def write(self, batch: Decoded) -> int:
        written = super().write(batch)
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("crashed before the ack")
        return written


def records(account: str, n: int) -> list[c.RequestRecord]:
    ts = int(datetime.now(UTC).timestamp() * 1000)
    return [
        c.RequestRecord(
            ts=ts - i,
            account=account,
            mode="live",
            route="/v1/me",
            method="GET",
            status=200,
            latency_ms=1.0,
            request_id=f"req_{uuid.uuid4().hex}",
        )
        for i in range(n)
    ]


def count(store: MetricsStore, account: str) -> int:
    rows = store.client.query(
        "SELECT count() FROM requests WHERE account = {a:String}", parameters={"a": account}
    )
    return rows.result_rows[0][0]


async def test_redelivered_batch_is_counted_once(bus: Bus, store: MetricsStore) -> None:
    account = f"acct_{uuid.uuid4().hex[:26]}"
    consumer = CrashAfterInsert(bus, store, fetch_timeout=0.2, ack_wait=1.0)
    consumer.retry_delay = 0.1
    await consumer.ensure()
    encoder = msgspec.msgpack.Encoder()
    for _ in range(3):
        await bus.publish_durably(
            c.REQUESTS_SUBJECT, encoder.encode(c.RequestBatch(records(account, 500))), msg_id=uuid.uuid4().hex
        )
    assert await consumer.pull_once() == 0  # inserted, then "crashed": nak'ed, nothing acked
    assert count(store, account) == 1500

    async def settled() -> bool:
        await consumer.pull_once()
        info = await bus.js.consumer_info(c.TELEMETRY_STREAM, c.CONSUMER)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await wait_for(settled, timeout=15, message="redelivered batch acked")
    assert count(store, account) == 1500
    await consumer.unbind()


async def test_undecodable_message_is_skipped(bus: Bus, store: MetricsStore) -> None:
    account = f"acct_{uuid.uuid4().hex[:26]}"
    consumer = TelemetryConsumer(bus, store, fetch_timeout=0.2)
    await consumer.ensure()
    await bus.publish_durably(c.REQUESTS_SUBJECT, b"\xc1 not msgpack", msg_id=uuid.uuid4().hex)
    await bus.publish_durably(
        c.REQUESTS_SUBJECT,
        msgspec.msgpack.encode(c.RequestBatch(records(account, 2))),
        msg_id=uuid.uuid4().hex,
    )
    await wait_for(lambda: consumer.pull_once(), timeout=5)
    assert count(store, account) == 2
    await consumer.unbind()
