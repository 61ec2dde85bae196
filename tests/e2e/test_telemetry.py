"""One trace from the HTTP request through NATS into the services and their stores; JSON logs
carry the request id and the trace id.

The gateway app and both services run in this process (over a real nats-server and real SQLite
files) so that one in-memory span exporter sees every span.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stratus_bus import Bus, ServiceUnavailable
from stratus_contracts import identity, keys, projects
from stratus_contracts.auth import Caller
from stratus_gateway.app import asgi
from stratus_identity.bootstrap import SERVICE as IDENTITY
from stratus_kit import serve
from stratus_projects.bootstrap import SERVICE as PROJECTS
from stratus_telemetry import JsonFormatter, configure_tracing
from stratus_testing import NatsServer

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture(scope="module")
def log_lines() -> Iterator[io.StringIO]:
    configure_tracing("telemetry-test", SimpleSpanProcessor(EXPORTER))
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter("telemetry-test"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
async def client(
    nats_server: NatsServer, log_lines: io.StringIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    monkeypatch.setenv("STRATUS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NATS_URL", nats_server.url)
    stop = asyncio.Event()
    # Both services run in this process (the kit's own `serve`), so one exporter sees every span.
    services = [asyncio.create_task(serve(service, stop)) for service in (IDENTITY, PROJECTS)]
    bus = await Bus.connect(nats_server.url, name="telemetry-test")
    try:
        secret = keys.generate("live")
        spec = identity.NewKey(mode="live", secret_hash=keys.hash_secret(secret), hint=keys.hint(secret))
        await _until_answered(bus, identity.Bootstrap(keys=[spec]))
        await _until_answered(bus, projects.ListProjects(caller=_NOBODY))
        app = asgi(bus)
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http,
        ):
            yield http, secret
    finally:
        stop.set()
        await asyncio.gather(*services)
        await bus.drain()


_NOBODY = Caller(account_id="acct_nobody", mode="live", key_id="key_nobody")


async def _until_answered(bus: Bus, message: object) -> None:
    """Send until the service answers: it subscribes once its stores are open."""

    async def attempt() -> bool:
        try:
            await bus.call(message, timeout=1.0)  # type: ignore[arg-type]
        except ServiceUnavailable:
            return False
        return True

    for _ in range(200):
        if await attempt():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{type(message).__name__} was never answered")


async def test_one_trace_spans_gateway_bus_service_and_store(client: tuple[httpx.AsyncClient, str]) -> None:
    http, secret = client
    EXPORTER.clear()
    response = await http.post(
        "/v1/projects",
        json={"name": "traced"},
        headers={"Authorization": f"Bearer {secret}", "X-Request-Id": "req-trace-1"},
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "req-trace-1"
    spans = EXPORTER.get_finished_spans()
    root = next(s for s in spans if s.name == "POST /v1/projects")
    trace_id = root.context.trace_id
    in_trace = {s.name for s in spans if s.context.trace_id == trace_id}
    assert {
        "send qry.identity.verify_key",
        "handle qry.identity.verify_key",
        "store.verify_key",
        "send cmd.projects.create_project",
        "handle cmd.projects.create_project",
        "store.save",
    } <= in_trace
    handler = next(s for s in spans if s.name == "handle cmd.projects.create_project")
    sender = next(s for s in spans if s.name == "send cmd.projects.create_project")
    assert handler.parent is not None and handler.parent.span_id == sender.context.span_id


async def test_logs_are_json_with_request_and_trace_ids(
    client: tuple[httpx.AsyncClient, str], log_lines: io.StringIO
) -> None:
    http, secret = client
    log_lines.truncate(0)
    log_lines.seek(0)
    response = await http.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    entries = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.strip()]
    access = [e for e in entries if e.get("msg") == "request" and e.get("request_id") == request_id]
    assert access, entries
    assert access[0]["path"] == "/v1/me" and access[0]["status"] == 200
    assert len(access[0]["trace_id"]) == 32
    assert secret not in log_lines.getvalue()
