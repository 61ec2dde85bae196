"""One running stack (`stratus up` as a subprocess, two replicas of everything, on a 3-node NATS
cluster) shared by the API tests of a session."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import httpx
import pytest

from stratus_contracts import keys
from stratus_testing import NatsCluster, Stack

EXTRA_ADMIN_KEY = keys.generate("live")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The production shape: a 3-node NATS cluster on loopback (JetStream R3, `sync_interval:
    # always`), two gateways behind the one port and two replicas of every service (the metrics
    # service on chDB stays one), so every API test runs across replicas and cluster nodes.
    # STRATUS_TEST_REPLICAS=1 runs them on one of each; STRATUS_TEST_NATS_NODES=1 on the one
    # nats-server `stratus up` embeds.
    env = {
        "STRATUS_ADMIN_KEY": EXTRA_ADMIN_KEY,
        "STRATUS_REQUEST_TIMEOUT": "2",
        "STRATUS_REPLICAS": os.environ.get("STRATUS_TEST_REPLICAS", "2"),
        "STRATUS_LEASE_TTL": "2",
    }
    nodes = int(os.environ.get("STRATUS_TEST_NATS_NODES", "3"))
    with contextlib.ExitStack() as started:
        if nodes > 1:
            # Started here, in a sync fixture: NatsCluster waits for JetStream with asyncio.run,
            # so not inside a running event loop. It stops after the stack (exits unwind in reverse).
            cluster = started.enter_context(NatsCluster(tmp_path_factory.mktemp("nats"), size=nodes))
            env |= {"NATS_URL": cluster.url, "STRATUS_STREAM_REPLICAS": str(min(nodes, 3))}
        yield started.enter_context(Stack(tmp_path_factory.mktemp("stack"), env=env))


@pytest.fixture
def live(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.live_key) as client:
        yield client


@pytest.fixture
def test_mode(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.test_key) as client:
        yield client


@pytest.fixture
def anon(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, trust_env=False, timeout=10.0) as client:
        yield client


def problem(response: httpx.Response, status: int, code: str) -> dict:
    """Assert an RFC 9457 problem response and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"] == f"/errors/{code}"
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body
