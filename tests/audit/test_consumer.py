"""The audit consumer against a real nats-server: it keeps audit-relevant events, acks only after
writing, dedupes by event id across redelivery, and a lost read model re-reads the stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import nats
import pytest

from stratus_audit.consumers import STREAM, AuditConsumer
from stratus_audit.read_model import AuditReadModel
from stratus_bus import Bus
from stratus_contracts import subjects
from stratus_contracts.audit import CONSUMER, ListAuditEvents
from stratus_contracts.auth import Caller
from stratus_contracts.events import Actor, Event
from stratus_testing import NatsServer, wait_for

from .conftest import event

ADMIN_A = Caller(account_id="acct_a", mode="live", key_id="key_admin")


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, name="audit-test")
    # Each test starts from an empty stream (deleting it deletes its consumers too).
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await bus.js.delete_stream(STREAM)
    await bus.ensure_events_stream()
    yield bus
    await bus.drain()


@contextlib.asynccontextmanager
async def running(consumer: AuditConsumer) -> AsyncIterator[AuditConsumer]:
    await consumer.ensure()
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def publish(bus: Bus, e: Event, msg_id: str | None = None) -> int:
    """Publish as a relay does; `msg_id` None publishes without JetStream's dedupe header."""
    subject = subjects.event(e.mode, e.account, *e.type.split(".", 1))
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    ack = await bus.js.publish(subject, msgspec.json.encode(e), headers=headers)
    return ack.seq


async def settled(bus: Bus, last_seq: int) -> bool:
    """The durable consumer has acked the whole stream up to `last_seq`."""
    info = await bus.js.consumer_info(STREAM, CONSUMER)
    return info.ack_floor.stream_seq >= last_seq and info.num_ack_pending == 0


def rows(model: AuditReadModel) -> list[str]:
    return [r["id"] for r in model.query("SELECT id FROM audit_events ORDER BY created, id")]


async def test_keeps_audit_events_and_skips_the_rest(bus: Bus, models: dict[str, AuditReadModel]) -> None:
    kept = [
        event("account.created", data={"id": "acct_a", "object": "account"}),
        event("key.created", minutes=1),
        event("member.added", data={"id": "mem_1", "object": "member"}, minutes=2),
        event("project.member_added", data={"project_id": "prj_1", "member_id": "mem_1"}, minutes=3),
        event("secret.revealed", data={"id": "sec_1", "object": "secret"}, minutes=4),
        event("token.created", data={"id": "tok_1", "object": "token"}, minutes=5),
    ]
    skipped = [event("project.created", data={"id": "prj_1", "object": "project"})]
    test_mode = event("key.revoked", mode="test")
    last = 0
    for e in [*kept, *skipped, test_mode]:
        last = await publish(bus, e, e.id)
    await bus.nc.publish("evt.live.acct_a.junk.sent", b"not json")
    async with running(AuditConsumer(bus, models, fetch_timeout=0.2)):
        await wait_for(lambda: settled(bus, last + 1), message="stream acked")
    assert rows(models["live"]) == [e.id for e in kept]
    assert rows(models["test"]) == [test_mode.id]
    assert models["live"].position() == models["test"].position() == last + 1


async def test_the_same_event_twice_in_the_stream_is_one_row(
    bus: Bus, models: dict[str, AuditReadModel]
) -> None:
    revoked = event("key.revoked", actor=Actor(key_id="key_admin", ip="127.0.0.1", request_id="req_x"))
    # Past JetStream's duplicate window (or with the header lost) the stream holds two copies.
    await publish(bus, revoked)
    last = await publish(bus, revoked)
    assert last == 2
    async with running(AuditConsumer(bus, models, fetch_timeout=0.2)):
        await wait_for(lambda: settled(bus, last), message="both copies acked")
    [item] = models["live"].list(ListAuditEvents(caller=ADMIN_A)).data
    assert item.id == revoked.id and item.actor.request_id == "req_x"


async def test_written_but_not_acked_is_redelivered_and_stays_one_row(
    bus: Bus, models: dict[str, AuditReadModel]
) -> None:
    created = event("key.created")
    last = await publish(bus, created, created.id)
    crashed = AuditConsumer(bus, models, ack_wait=1.0)
    await crashed.ensure()
    assert crashed.puller is not None
    msgs = await crashed.puller.fetch(10, timeout=5)
    # What a process has done when it dies after committing the rows and before acking them:
    assert crashed.write(*crashed.rows(msgs)) == 1
    await crashed.unbind()
    restarted = AuditConsumer(bus, models, fetch_timeout=0.2, ack_wait=1.0)
    async with running(restarted):
        await wait_for(lambda: settled(bus, last), message="redelivered batch acked")
    info = await bus.js.consumer_info(STREAM, CONSUMER)
    assert info.delivered.consumer_seq == 2  # delivered twice, written once
    assert rows(models["live"]) == [created.id]


async def test_a_lost_read_model_rereads_the_stream(
    bus: Bus, tmp_path: Path, models: dict[str, AuditReadModel]
) -> None:
    events = [event("key.created", minutes=i) for i in range(3)]
    for e in events:
        last = await publish(bus, e, e.id)
    async with running(AuditConsumer(bus, models, fetch_timeout=0.2)):
        await wait_for(lambda: settled(bus, last), message="stream acked")
    before = rows(models["live"])
    # The model file is gone (a new disk, `rm`); the durable consumer still says "all acked".
    lost = tmp_path / "lost"
    lost.mkdir()
    fresh = {mode: AuditReadModel(lost / f"audit-{mode}.audit.read.db", mode) for mode in ("live", "test")}
    try:
        async with running(AuditConsumer(bus, fresh, fetch_timeout=0.2)) as consumer:
            await wait_for(lambda: _at(consumer, last), message="model re-read")
        assert rows(fresh["live"]) == before == [e.id for e in events]
    finally:
        for model in fresh.values():
            model.close()


async def _at(consumer: AuditConsumer, seq: int) -> bool:
    return await consumer.position() >= seq


async def test_rebuild_drops_and_rereads(bus: Bus, models: dict[str, AuditReadModel]) -> None:
    live, test = event("key.created"), event("key.created", mode="test")
    await publish(bus, live, live.id)
    last = await publish(bus, test, test.id)
    async with running(AuditConsumer(bus, models, fetch_timeout=0.2)) as consumer:
        await wait_for(lambda: settled(bus, last), message="stream acked")
        assert await consumer.rebuild(timeout=10) == {"live": 1, "test": 1}
        # The consumer keeps following the stream after a rebuild.
        later = event("key.revoked", minutes=5)
        after = await publish(bus, later, later.id)
        await wait_for(lambda: settled(bus, after), message="new event after rebuild")
    assert rows(models["live"]) == [live.id, later.id]


async def test_a_deleted_consumer_is_recreated_after_the_read_models_position(
    bus: Bus, models: dict[str, AuditReadModel]
) -> None:
    first = event("key.created")
    last = await publish(bus, first, first.id)
    async with running(AuditConsumer(bus, models, fetch_timeout=0.2)) as consumer:
        await wait_for(lambda: settled(bus, last), message="stream acked")
        await bus.js.delete_consumer(STREAM, CONSUMER)  # an operator's `nats consumer rm EVENTS audit`
        second = event("key.revoked", minutes=1)
        after = await publish(bus, second, second.id)
        await wait_for(lambda: _at(consumer, after), timeout=15, message="consumer recreated")
    info = await bus.js.consumer_info(STREAM, CONSUMER)
    assert info.config.opt_start_seq == last + 1  # resumed after the model, not from the start
    assert rows(models["live"]) == [first.id, second.id]
