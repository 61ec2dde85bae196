"""Creating a key in a replicated KV bucket when others race for it (two gateways claiming one
Idempotency-Key): exactly one create wins, every loser is told the key exists
(`KeyWrongLastSequenceError`, never nats-py's `KeyNotFoundError` from its re-read on a replica
that has not applied the winner yet), and a read after losing finds the winner's value."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyWrongLastSequenceError

from stratus_bus import Bus, kv_create, kv_get_written
from stratus_testing import NatsCluster

KEYS, RACERS = 30, 30


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path) as made:
        yield made


async def test_one_create_wins_and_every_loser_reads_the_winner(
    cluster: NatsCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUS_STREAM_REPLICAS", "3")
    urls = cluster.url.split(",")
    buses = [await Bus.connect(url, name=f"racer-{i}") for i, url in enumerate(urls)]
    try:
        kvs = [await bus.key_value(KeyValueConfig(bucket="racing", history=1)) for bus in buses]
        assert (await buses[0].js.stream_info("KV_racing")).config.num_replicas == 3
        outcomes: Counter[str] = Counter()
        read_back: list[bool] = []

        async def race(key: str, racer: int) -> None:
            kv = kvs[racer % len(kvs)]
            value = f"{racer}".encode()
            try:
                await kv_create(kv, key, value)
                outcomes["won"] += 1
            except KeyWrongLastSequenceError:
                outcomes["lost"] += 1
                winner = await kv_get_written(kv, key)
                read_back.append(bool(winner.value))

        await asyncio.gather(*(race(f"k{k}", r) for k in range(KEYS) for r in range(RACERS)))
        assert outcomes == {"won": KEYS, "lost": KEYS * (RACERS - 1)}
        assert all(read_back) and len(read_back) == KEYS * (RACERS - 1)
    finally:
        for bus in buses:
            await bus.drain()
