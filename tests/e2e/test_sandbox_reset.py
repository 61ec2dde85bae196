"""`stratus sandbox reset` with two replicas of every service: test mode's projects, webhook
endpoints, event feed and metrics are gone everywhere (no replica serves a stale copy), live
data is untouched, the sandbox works again at once, and a restarted service stays reset; a
test-mode write retried with its Idempotency-Key after a reset runs again, a live one replays."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx

from stratus_testing import Stack, wait_until

REPLAYED = "idempotent-replayed"


def metric_sum(client: httpx.Client, name: str) -> float:
    response = client.post(
        "/v1/metrics/query", json={"metric": name, "aggregation": "sum", "range": "15m", "step": "15m"}
    )
    assert response.status_code == 200, response.text
    return sum(v or 0 for s in response.json()["data"]["series"] for _, v in s["points"])


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def test_the_reset_drops_test_mode_only(tmp_path: Path) -> None:
    env = {"STRATUS_REPLICAS": "2", "STRATUS_LEASE_TTL": "2"}
    with Stack(tmp_path / "data", env=env) as stack:
        live, test = stack.client(stack.live_key), stack.client(stack.test_key)
        with live, test:
            name = f"sbx-{uuid.uuid4().hex[:6]}"
            kept = live.post("/v1/projects", json={"name": name}).json()["data"]
            gone = test.post("/v1/projects", json={"name": name}).json()["data"]
            hooks: dict[str, Any] = {}
            for mode, client in (("live", live), ("test", test)):
                made = client.post("/v1/webhooks", json={"url": "https://example.com/in", "events": ["*"]})
                assert made.status_code == 201, made.text
                hooks[mode] = made.json()["data"]["id"]
            metric = f"sbx.{uuid.uuid4().hex[:6]}"
            for client in (live, test):
                sent = client.post("/v1/metrics/events", json={"events": [{"name": metric, "value": 2.0}]})
                assert sent.status_code == 202, sent.text
            wait_until(
                lambda: metric_sum(test, metric) == 2.0 and metric_sum(live, metric) == 2.0, timeout=20
            )
            wait_until(lambda: ids(test.get("/v1/events")), timeout=20)  # the feed has test events
            live_events = ids(live.get("/v1/events"))

            done = stack.cli("sandbox", "reset")
            assert done.returncode == 0, done.stderr
            result = json.loads(done.stdout)
            assert result["epoch"] == 1 and set(result["services"].values()) == {1}

            def reset_everywhere() -> bool:
                # Fresh connections, so requests meet both gateways and both replicas.
                for _ in range(6):
                    with stack.client(stack.test_key) as fresh:
                        if fresh.get(f"/v1/projects/{gone['id']}").status_code != 404:
                            return False
                        if ids(fresh.get("/v1/projects")) or ids(fresh.get("/v1/webhooks")):
                            return False
                return True

            wait_until(reset_everywhere, timeout=20)
            assert ids(test.get("/v1/events")) == []
            assert metric_sum(test, metric) == 0
            # Live: untouched.
            assert live.get(f"/v1/projects/{kept['id']}").json()["data"] == kept
            assert ids(live.get("/v1/webhooks")) == [hooks["live"]]
            assert metric_sum(live, metric) == 2.0
            assert set(live_events) <= set(ids(live.get("/v1/events?limit=100")))

            # The sandbox works at once, the old name free again.
            again = test.post("/v1/projects", json={"name": name})
            assert again.status_code == 201, again.text
            fresh_id = again.json()["data"]["id"]
            assert ids(test.get("/v1/projects")) == [fresh_id]

            # A service started after the reset opens the new epoch's partition.
            for child in ("projects", "projects-2"):
                pid = stack.info()["services"][child]
                os.kill(pid, signal.SIGKILL)
                stack.wait_restarted(child, pid)
            wait_until(lambda: test.get(f"/v1/projects/{fresh_id}").status_code == 200, timeout=30)
            assert test.get(f"/v1/projects/{gone['id']}").status_code == 404
            assert live.get(f"/v1/projects/{kept['id']}").status_code == 200


def test_the_reset_forgets_test_mode_idempotent_answers_only(tmp_path: Path) -> None:
    with (
        Stack(tmp_path / "data") as stack,
        stack.client(stack.live_key) as live,
        stack.client(stack.test_key) as test,
    ):
        body = {"name": f"sbx-idem-{uuid.uuid4().hex[:6]}"}
        keyed = {
            "test": (test, {"Idempotency-Key": f"K-{uuid.uuid4()}"}),
            "live": (live, {"Idempotency-Key": f"K2-{uuid.uuid4()}"}),
        }

        def send() -> dict[str, httpx.Response]:
            return {mode: c.post("/v1/projects", json=body, headers=h) for mode, (c, h) in keyed.items()}

        first = send()
        for mode, response in first.items():
            assert response.status_code == 201, (mode, response.text)
            assert REPLAYED not in response.headers

        done = stack.cli("sandbox", "reset")
        assert done.returncode == 0, done.stderr

        again = send()
        # Test mode: the key's record went with the sandbox, so the create runs again, in it.
        assert again["test"].status_code == 201, again["test"].text
        assert REPLAYED not in again["test"].headers
        made = again["test"].json()["data"]["id"]
        assert made != first["test"].json()["data"]["id"]
        assert ids(test.get("/v1/projects")) == [made]
        # Live: the first answer, byte for byte.
        assert again["live"].status_code == 201 and again["live"].headers[REPLAYED] == "true"
        assert again["live"].content == first["live"].content
        assert live.get(f"/v1/projects/{first['live'].json()['data']['id']}").status_code == 200
        # The new test-mode answer is the key's record from now on.
        third = send()["test"]
        assert third.headers[REPLAYED] == "true" and third.content == again["test"].content


def test_the_sandbox_is_reset_on_an_interval(tmp_path: Path) -> None:
    with (
        Stack(tmp_path / "data", env={"STRATUS_SANDBOX_RESET_INTERVAL": "2"}) as stack,
        stack.client(stack.live_key) as live,
        stack.client(stack.test_key) as test,
    ):
        kept = live.post("/v1/projects", json={"name": "interval-live"}).json()["data"]
        gone = test.post("/v1/projects", json={"name": "interval-test"}).json()["data"]
        wait_until(lambda: test.get(f"/v1/projects/{gone['id']}").status_code == 404, timeout=30)
        assert live.get(f"/v1/projects/{kept['id']}").status_code == 200
