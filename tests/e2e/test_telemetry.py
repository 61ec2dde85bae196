"""One trace from the HTTP request through NATS into the services and their stores; JSON logs
carry the request id and the trace id.

The gateway app and both services run in this process (over a real nats-server and real SQLite
files) so that one in-memory span exporter sees every span.
"""

from __future__ import annotations

import contextlib
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

from stratus_bus import Bus
from stratus_contracts import identity, keys, subjects
from stratus_gateway.app import asgi
from stratus_identity.bootstrap import setup as identity_setup
from stratus_projects.bootstrap import setup as projects_setup
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
    bus = await Bus.connect(nats_server.url, name="telemetry-test")
    await bus.ensure_events_stream()
    async with contextlib.AsyncExitStack() as stack:
        await identity_setup(bus, stack)
        await projects_setup(bus, stack)
        secret = keys.generate("live")
        spec = identity.NewKey(mode="live", secret_hash=keys.hash_secret(secret), hint=keys.hint(secret))
        await bus.request(
            subjects.command("identity", "bootstrap"),
            identity.Bootstrap(keys=[spec]),
            identity.BootstrapResult,
        )
        app = asgi(bus)
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http,
        ):
            yield http, secret
    await bus.drain()


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
        "send cmd.projects.create",
        "handle cmd.projects.create",
        "store.save",
    } <= in_trace
    handler = next(s for s in spans if s.name == "handle cmd.projects.create")
    sender = next(s for s in spans if s.name == "send cmd.projects.create")
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
