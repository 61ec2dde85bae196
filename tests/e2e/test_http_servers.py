"""The gateway on each HTTP server it can run on (`STRATUS_HTTP_SERVER`): a whole stack serves
with the non-default one, and on both the size limits and the client address are the gateway's
own and SIGTERM lets an open request finish before the lifespan's shutdown runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from stratus_contracts import projects
from stratus_gateway.__main__ import DEFAULT_SERVER, SERVERS
from stratus_gateway.limits import MAX_HEADER, MAX_URL
from stratus_testing import Stack, free_port, wait_until
from stratus_testing.processes import preexec, terminate

from .conftest import problem

OTHER = next(name for name in SERVERS if name != DEFAULT_SERVER)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A request to a stopped service is answered 504 after this long: the drain test's request.
    env = {"STRATUS_HTTP_SERVER": OTHER, "STRATUS_REQUEST_TIMEOUT": "2"}
    with Stack(tmp_path_factory.mktemp("servers"), env=env) as running:
        yield running


@contextlib.contextmanager
def gateway(stack: Stack, server: str) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A gateway replica on the stack's bus served by `server`, at INFO: its process, URL, log."""
    port = free_port()
    env = {
        **stack.env,
        "NATS_URL": stack.nats_url,
        "STRATUS_PORT": str(port),
        "STRATUS_HTTP_SERVER": server,
        "STRATUS_LOG_LEVEL": "INFO",
    }
    path = stack.data_dir / f"gateway-{server}-{port}.log"
    with path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stratus_gateway"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=preexec(),
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, path.read_text()
        return httpx.get(f"{url}/readyz", timeout=1.0, trust_env=False).status_code == 200

    try:
        wait_until(ready, timeout=stack.ready_timeout, ignore=(httpx.HTTPError,), message="gateway")
        yield proc, url, path
    finally:
        terminate(proc, 15.0)


def test_a_stack_serves_on_the_other_server(stack: Stack) -> None:
    with stack.client(stack.live_key) as client:
        made = client.post("/v1/projects", json={"name": "served"}, headers={"X-Request-Id": "req-other-1"})
        assert made.status_code == 201, made.text
        assert made.headers["x-request-id"] == "req-other-1"
        got = client.get(f"/v1/projects/{made.json()['data']['id']}")
        assert got.status_code == 200 and got.json()["data"]["name"] == "served"
        # Granian names itself in a `Server` header (it cannot be turned off); uvicorn is told not to.
        assert ("granian" in got.headers.get("server", "")) == (OTHER == "granian")


@pytest.mark.parametrize("server", SERVERS)
def test_size_limits_and_the_client_address_are_the_gateways(stack: Stack, server: str) -> None:
    with stack.client(stack.live_key) as admin:
        made = admin.post(
            "/v1/keys", json={"name": "ip", "scopes": ["read"], "allowed_ips": ["203.0.113.0/24"]}
        )
        assert made.status_code == 201, made.text
    outside = stack.auth(made.json()["data"]["secret"])
    with gateway(stack, server) as (_, url, _), httpx.Client(base_url=url, trust_env=False) as client:
        problem(client.get("/v1/me", params={"q": "q" * MAX_URL}), 414, "uri_too_long")
        problem(client.get("/healthz", headers={"X-Padding": "x" * MAX_HEADER}), 431, "headers_too_large")
        # The server rewrites no address from X-Forwarded-For: the peer is the client.
        spoofed = client.get("/v1/me", headers={**outside, "X-Forwarded-For": "203.0.113.5"})
        assert "127.0.0.1" in problem(spoofed, 403, "ip_not_allowed")["detail"]


@pytest.mark.parametrize("server", SERVERS)
async def test_sigterm_lets_an_open_request_finish_then_shuts_down(stack: Stack, server: str) -> None:
    with gateway(stack, server) as (proc, url, log_path):
        nc = await nats.connect(stack.nats_url)
        forwarded = asyncio.Event()

        async def seen(_: object) -> None:
            forwarded.set()

        await nc.subscribe(projects.ListProjects.subject, cb=seen)
        await nc.flush()
        service = stack.service_pid("projects")
        async with httpx.AsyncClient(
            base_url=url, headers=stack.auth(stack.live_key), trust_env=False
        ) as client:
            os.kill(service, signal.SIGSTOP)
            try:
                sent = asyncio.create_task(client.get("/v1/projects", timeout=30))
                await asyncio.wait_for(forwarded.wait(), timeout=10)  # the request is in the gateway
                proc.send_signal(signal.SIGTERM)
                # Its answer still arrives (the service never does, so it is the gateway's 504).
                problem(await sent, 504, "service_timeout")
            finally:
                os.kill(service, signal.SIGCONT)
                await nc.close()
        assert await asyncio.to_thread(proc.wait, 15) == 0
        # The lifespan's shutdown ran (leases given back, bus drained) and its line was written
        # before the process exited, after the server's own last lines.
        logged = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        assert "gateway stopped" in [entry["msg"] for entry in logged]
        assert logged[-1]["msg"] in ("gateway stopped", f"Finished server process [{proc.pid}]")
