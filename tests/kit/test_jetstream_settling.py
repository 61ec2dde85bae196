"""A process that starts while its NATS cluster has no JetStream leader (two of three nodes just
died, or one did and the others are electing) waits for the cluster rather than crashing: what
`Bus.settled` and the calls built on it (`Bus.key_value`, the stream and consumer set-up) do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import KeyValueConfig

from stratus_bus.bus import SETTLING, Bus
from stratus_testing import NatsCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path) as made:  # started outside the test's event loop (it runs its own)
        yield made


@pytest.fixture
def leaderless(cluster: NatsCluster) -> NatsCluster:
    cluster.kill(1)
    cluster.kill(2)  # one node of three is no quorum: JetStream has no meta leader
    return cluster


async def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_bucket_opened_without_a_quorum_opens_once_the_cluster_has_one(
    leaderless: NatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    bus = await Bus.connect(leaderless.url.split(",")[0], name="settling")
    try:
        caplog.set_level(logging.WARNING, logger="stratus.bus")
        opening = asyncio.create_task(bus.key_value(KeyValueConfig(bucket="settling", history=1)))
        await _until(lambda: any("jetstream not ready" in r.getMessage() for r in caplog.records))
        assert not opening.done()
        await asyncio.to_thread(leaderless.start_node, 1)
        kv = await asyncio.wait_for(opening, 60)
        await kv.put("k", b"v")
        assert (await kv.get("k")).value == b"v"
    finally:
        await bus.drain()


async def test_it_gives_up_after_its_patience_with_the_error_jetstream_gave(leaderless: NatsCluster) -> None:
    bus = await Bus.connect(leaderless.url.split(",")[0], name="settling")
    try:
        with pytest.raises(SETTLING):
            await bus.settled(
                lambda: bus.js.add_stream(name="SETTLING", subjects=["settling.>"]), patience=1.0
            )
    finally:
        await bus.drain()


async def test_an_answer_that_is_not_about_the_cluster_is_not_retried(cluster: NatsCluster) -> None:
    bus = await Bus.connect(cluster.url, name="settling")
    calls = 0

    async def missing() -> object:
        nonlocal calls
        calls += 1
        return await bus.js.stream_info("NO_SUCH_STREAM")

    try:
        with pytest.raises(nats.js.errors.NotFoundError):
            await bus.settled(missing)
        assert calls == 1
    finally:
        await bus.drain()
