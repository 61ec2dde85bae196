"""`/v1/metrics` on the running stack: gateway traffic shows up per route and status, latency
percentiles match injected values, custom events and build durations query by label, limits and
injection attempts answer stable problems, and no account or mode sees another's metrics."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import nats
import pytest

from stratus_contracts import metrics as c
from stratus_contracts.deployments import DEPLOYMENT_DEPLOYING, Deployment
from stratus_contracts.ids import new_id
from stratus_testing import Stack, wait_until

from .conftest import problem


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> dict[str, Any]:
    """An account of its own, so that the counts here are this module's requests only."""
    made = stack.cli("accounts", "create", f"metrics-{uuid.uuid4().hex[:6]}", "--json", "--plan", "internal")
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout)


@pytest.fixture
def live(stack: Stack, tenant: dict[str, Any]) -> Any:
    with stack.client(tenant["keys"]["live"]) as client:
        yield client


@pytest.fixture
def test_mode(stack: Stack, tenant: dict[str, Any]) -> Any:
    with stack.client(tenant["keys"]["test"]) as client:
        yield client


def points(body: dict[str, Any], **labels: str) -> float:
    """The sum of every point of the series whose labels include `labels`."""
    return sum(
        v or 0
        for s in body["data"]["series"]
        if labels.items() <= s["labels"].items()
        for _, v in s["points"]
    )


def series(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/metrics/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def query(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/metrics/query", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def publish(stack: Stack, subject: str, payload: bytes) -> None:
    """Publish as a producer does (the gateway's telemetry task, a service's relay)."""

    async def go() -> None:
        nc = await nats.connect(stack.nats_url.split(","))
        try:
            await nc.jetstream().publish(subject, payload, headers={"Nats-Msg-Id": uuid.uuid4().hex})
        finally:
            await nc.drain()

    asyncio.run(go())


def test_gateway_traffic_counts_per_route_and_status(live: httpx.Client, test_mode: httpx.Client) -> None:
    for _ in range(3):
        assert live.get("/v1/me").status_code == 200
    for _ in range(2):
        assert live.get(f"/v1/projects/{new_id('prj')}").status_code == 404
    assert test_mode.get("/v1/me").status_code == 200

    def counted() -> dict[str, Any] | None:
        body = series(live, "requests", range="15m", group_by="route,status")
        me = points(body, route="/v1/me", status="200")
        missing = points(body, route="/v1/projects/{project_id}", status="404")
        return body if (me, missing) == (3, 2) else None

    body = wait_until(counted, timeout=15, interval=0.2, message="requests counted")
    assert body["data"]["step"] == 10 and body["data"]["range"]["seconds"] == 900
    assert len(body["data"]["series"][0]["points"]) == 90
    # Test-mode traffic is counted in test mode only.
    wait_until(lambda: points(series(test_mode, "requests", range="15m", route="/v1/me")) == 1, timeout=15)
    errors = series(live, "errors", range="15m", route="/v1/projects/{project_id}")
    assert points(errors, **{"class": "4xx", "stat": "count"}) == 2
    assert points(errors, **{"class": "4xx", "stat": "rate"}) == 1.0


def test_latency_percentiles_from_crafted_records(
    stack: Stack, tenant: dict[str, Any], live: httpx.Client
) -> None:
    now = int(datetime.now(UTC).timestamp() * 1000)
    route = f"/v1/probe/{uuid.uuid4().hex[:8]}"
    records = [
        c.RequestRecord(
            ts=now - i,
            account=tenant["id"],
            mode="live",
            route=route,
            method="GET",
            status=200,
            latency_ms=float(i),
            request_id=f"req_{uuid.uuid4().hex}",
        )
        for i in range(1, 101)
    ]
    publish(stack, c.REQUESTS_SUBJECT, msgspec.msgpack.encode(c.RequestBatch(records=records)))

    def quantiles() -> dict[str, float] | None:
        body = series(live, "latency", range="5m", step="5m", route=route)
        got = {s["labels"]["quantile"]: max(v or 0 for _, v in s["points"]) for s in body["data"]["series"]}
        return got if got.get("p50") else None

    assert wait_until(quantiles, timeout=15, interval=0.2) == {
        "p50": 51.0,
        "p90": 91.0,
        "p95": 96.0,
        "p99": 100.0,
    }


def test_custom_events_by_name_and_labels(live: httpx.Client, test_mode: httpx.Client) -> None:
    name = f"checkout.{uuid.uuid4().hex[:8]}"
    events = [
        {"name": name, "value": float(i), "labels": {"plan": "pro" if i % 2 else "free"}}
        for i in range(1, 11)
    ]
    response = live.post("/v1/metrics/events", json={"events": events})
    assert response.status_code == 202, response.text
    assert response.json()["data"]["accepted"] == 10

    def summed() -> dict[str, float] | None:
        body = query(live, metric=name, aggregation="sum", group_by=["plan"], range="15m", step="15m")
        got = {s["labels"]["plan"]: points(body, plan=s["labels"]["plan"]) for s in body["data"]["series"]}
        return got if len(got) == 2 else None

    assert wait_until(summed, timeout=15, interval=0.2) == {"pro": 25.0, "free": 30.0}
    body = query(live, metric=name, aggregation="p50", filters={"plan": "pro"}, range="15m", step="15m")
    assert max(v or 0 for _, v in body["data"]["series"][0]["points"]) == 5.0
    assert points(query(test_mode, metric=name, aggregation="count", range="15m")) == 0


def test_event_input_is_validated(live: httpx.Client) -> None:
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    for events in (
        [],
        [{"name": "Bad Name", "value": 1}],
        [{"name": "ok", "value": 1, "timestamp": old}],
        [{"name": "ok", "value": 1, "labels": {f"k{i}": "v" for i in range(17)}}],
        [{"name": "ok", "value": 1, "extra": True}],
        [{"name": "ok", "value": 1}] * 1001,
    ):
        problem(live.post("/v1/metrics/events", json={"events": events}), 422, "validation_failed")


def test_limits(live: httpx.Client) -> None:
    body = problem(
        live.get("/v1/metrics/requests", params={"range": "30d", "step": "1m"}),
        422,
        "metrics_too_many_points",
    )
    assert "step" in body["detail"]
    for params in ({"range": "31d"}, {"range": "30s"}, {"range": "1h", "step": "2h"}, {"range": "forever"}):
        problem(live.get("/v1/metrics/latency", params=params), 422, "metrics_range_invalid")
    problem(
        live.post("/v1/metrics/query", json={"metric": "requests", "range": "1y"}),
        422,
        "metrics_range_invalid",
    )
    problem(live.get("/v1/metrics/errors", params={"group_by": "account"}), 422, "validation_failed")


EVIL = "x' OR 1=1 OR account != '"


def test_injection_attempts_are_inert(live: httpx.Client) -> None:
    for param in ("project", "env", "route"):
        body = series(live, "requests", range="1h", **{param: EVIL})
        assert points(body) == 0
    problem(live.get("/v1/metrics/requests", params={"group_by": "route) OR (1=1"}), 422, "validation_failed")
    assert points(query(live, metric="requests", filters={"route": EVIL}, range="1h")) == 0
    for body in (
        {"metric": "requests'; DROP TABLE requests; --"},
        {"metric": "requests", "aggregation": "count() FROM system.tables --"},
        {"metric": "requests", "group_by": ["route, account"]},
        {"metric": "requests", "filters": {"1=1 OR account": "x"}},
        {"metric": "signup", "group_by": ["k'] OR 1=1 --"]},
        {"metric": "signup", "filters": {"k']!='": "v"}},
    ):
        problem(live.post("/v1/metrics/query", json={"range": "1h", **body}), 422, "validation_failed")
    assert points(series(live, "requests", range="1h")) > 0  # the tables are still there


def test_another_account_and_mode_see_nothing(
    stack: Stack, tenant: dict[str, Any], live: httpx.Client, test_mode: httpx.Client
) -> None:
    route = f"/v1/tenancy/{uuid.uuid4().hex[:8]}"
    now = int(datetime.now(UTC).timestamp() * 1000)
    records = [
        c.RequestRecord(
            ts=now - i,
            account=tenant["id"],
            mode="live",
            route=route,
            method="GET",
            status=200,
            latency_ms=1.0,
            request_id=f"req_{uuid.uuid4().hex}",
        )
        for i in range(5)
    ]
    publish(stack, c.REQUESTS_SUBJECT, msgspec.msgpack.encode(c.RequestBatch(records=records)))
    wait_until(lambda: points(series(live, "requests", range="15m", route=route)) == 5, timeout=15)
    with stack.client(stack.live_key) as other:
        assert points(series(other, "requests", range="15m", route=route)) == 0
        assert points(query(other, metric="requests", filters={"route": route}, range="15m")) == 0
    assert points(series(test_mode, "requests", range="15m", route=route)) == 0


def test_build_duration_p95_per_project(stack: Stack, tenant: dict[str, Any], live: httpx.Client) -> None:
    """Deployment events as the deployments relay publishes them become build durations."""
    now = datetime.now(UTC).replace(microsecond=0)
    projects = [new_id("prj"), new_id("prj")]
    for p, project in enumerate(projects):
        for i in range(1, 21):
            started = now - timedelta(hours=i)
            data = Deployment(
                id=new_id("dep"),
                project=project,
                env="production",
                env_id=new_id("env"),
                status="deploying",
                ref="main",
                sha="a" * 40,
                config_version=1,
                repo_url="/r",
                build_command="make",
                start_command="run",
                health_check_path="/",
                url=None,
                reason=None,
                failure_code=None,
                rollback_of=None,
                mode="live",
                created=started,
                updated=started + timedelta(seconds=i * (p + 1)),
                version=3,
                build_started_at=started,
                build_finished_at=started + timedelta(seconds=i * (p + 1)),
            )
            event = DEPLOYMENT_DEPLOYING.event(
                id=new_id("evt"),
                created=data.updated,
                mode="live",
                account=tenant["id"],
                data=data,
                actor=None,
            )
            publish(stack, DEPLOYMENT_DEPLOYING.subject("live", tenant["id"]), msgspec.json.encode(event))

    expected = {projects[0]: 20.0, projects[1]: 40.0}  # p95 of 1..20 s, and of 2..40 s

    def p95() -> dict[str, float]:
        body = query(
            live, metric="build_duration", aggregation="p95", group_by=["project"], range="7d", step="7d"
        )
        return {s["labels"]["project"]: max(v or 0 for _, v in s["points"]) for s in body["data"]["series"]}

    wait_until(lambda: p95() == expected, timeout=15, interval=0.2, message="build durations")


def test_routes_are_documented_and_readyz_shows_telemetry(stack: Stack, live: httpx.Client) -> None:
    spec = live.get("/openapi.json").json()
    for path in ("requests", "latency", "errors", "query", "events"):
        assert f"/v1/metrics/{path}" in spec["paths"]
    ready = live.get("/readyz").json()["data"]
    assert ready["checks"]["metrics"] is True
    assert ready["telemetry"]["dropped_total"] == 0
