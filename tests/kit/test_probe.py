"""The container health probe (`python -m stratus_kit.probe`): it asks this host's own replica of
a service over NATS, and tells a silent service (1) from an unreachable bus (2)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stratus_identity.bootstrap import SERVICE
from stratus_kit import probe, serve
from stratus_testing import NatsServer, free_port, wait_for


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture
async def identity(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    monkeypatch.setenv("NATS_URL", nats_server.url)
    monkeypatch.setenv("STRATUS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.sqlite")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(SERVICE, stop))

    async def answers() -> bool:
        code, _ = await probe.probe("identity", nats_server.url, socket.gethostname(), 1.0)
        return code == probe.ANSWERED

    await wait_for(answers, timeout=30, message="the identity service to answer its host ping")
    yield
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 15)


async def test_this_hosts_replica_answers(identity: None, nats_server: NatsServer) -> None:
    code, said = await probe.probe("identity", nats_server.url, socket.gethostname(), 2.0)
    assert code == probe.ANSWERED and said.startswith("identity-")


async def test_a_replica_on_another_host_does_not_answer_for_this_one(
    identity: None, nats_server: NatsServer
) -> None:
    code, said = await probe.probe("identity", nats_server.url, "some-other-pod", 1.0)
    assert code == probe.SILENT, said
    code, _ = await probe.probe("projects", nats_server.url, socket.gethostname(), 1.0)
    assert code == probe.SILENT


async def test_the_command_exits_0_for_a_live_service(identity: None, nats_server: NatsServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stratus_kit.probe",
        env={**os.environ, "NATS_URL": nats_server.url, "STRATUS_SERVICE": "identity"},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out
    assert b"answered" in out


def test_no_bus_is_2_and_alive_for_a_liveness_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", f"nats://127.0.0.1:{free_port()}")
    assert probe.main(["identity", "--timeout", "1"]) == probe.NO_BUS
    assert probe.main(["identity", "--timeout", "1", "--live"]) == 0
