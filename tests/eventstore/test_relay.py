"""The outbox relay publishes committed events to JetStream exactly once, across crashes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import msgspec
import nats
import pytest

from stratus_bus import Bus
from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.events import Event
from stratus_kit import Local, Relay
from stratus_projects import views
from stratus_testing import NatsServer

from .support import Services

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, name="relay-test")
    # Each test starts from an empty stream.
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await bus.js.delete_stream("EVENTS")
    await bus.ensure_events_stream()
    yield bus
    await bus.drain()


@pytest.fixture
def projects(services: Services) -> Local:
    return services.projects()


async def stream_events(bus: Bus) -> list[Event]:
    info = await bus.js.stream_info("EVENTS")
    if info.state.messages == 0:
        return []
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg("EVENTS", seq)
        events.append(msgspec.json.decode(msg.data, type=Event))
    return events


async def test_events_committed_while_no_relay_ran_arrive_once(bus: Bus, projects: Local) -> None:
    made = projects.call(c.CreateProject(caller=ALICE, name="web"))
    projects.call(c.UpdateProject(caller=ALICE, project_id=made.id, description="v2"))
    part = projects.partitions["live"]
    relay = Relay(part, bus, views.PUBLISHER)
    assert await relay.publish_pending() == 2
    # A second relay (a restart) starts from the recorded position and sends nothing.
    assert await Relay(part, bus, views.PUBLISHER).publish_pending() == 0
    events = await stream_events(bus)
    assert [e.type for e in events] == ["project.created", "project.updated"]
    assert events[0].data["id"] == made.id and events[1].data["description"] == "v2"
    assert events[0].account == "acct_alice" and events[0].mode == "live"


async def test_crash_after_publish_before_recording_is_deduplicated(bus: Bus, projects: Local) -> None:
    made = projects.call(c.CreateProject(caller=ALICE, name="api"))
    part = projects.partitions["live"]
    crashed = Relay(part, bus, views.PUBLISHER)
    # What a relay has done when it dies between JetStream's ack and recording its position:
    assert await crashed.publish(crashed.read(crashed.position())) == 1
    assert crashed.position() == 0
    restarted = Relay(part, bus, views.PUBLISHER)
    await restarted.publish_pending()
    assert restarted.position() > 0
    events = await stream_events(bus)
    assert [(e.type, e.data["id"]) for e in events] == [("project.created", made.id)]
