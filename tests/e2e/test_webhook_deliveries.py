"""Webhook deliveries end to end: a real receiver (an HTTP server in this process) verifying
signatures with the `standardwebhooks` package, the seed's retry schedule run on a fast clock
(`STRATUS_CLOCK_SCALE`: 72 hours in about 7 seconds), 410 Gone, a rotation's dual signatures,
test mode's simulated deliveries, and redelivery. One stack for the module."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from stratus_contracts import keys
from stratus_testing import Stack

SCALE = 36_000  # service seconds per real second


class Receiver:
    """Answers by path: `/ok` 200, `/gone` 410, `/down` 500, `/flaky` 500 twice then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # cut off (a sender killed mid-request): not a delivery
                    return
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    seen = sum(1 for r in receiver.requests if r["path"] == self.path)
                kind = self.path.split("-")[0]  # `/ok-rotation` answers as `/ok`
                status = {"/ok": 200, "/gone": 410, "/down": 500}.get(kind, 200 if seen > 2 else 500)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, path: str, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r["path"] == path and json.loads(r["body"])["data"]["name"] == name
            ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"STRATUS_ADMIN_KEY": keys.generate("live"), "STRATUS_CLOCK_SCALE": str(SCALE)}
    with Stack(tmp_path_factory.mktemp("hooks-stack"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


@pytest.fixture(scope="module")
def live(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.live_key) as client:
        yield client


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def endpoint(client: httpx.Client, url: str) -> dict:
    made = client.post("/v1/webhooks", json={"url": url, "events": ["project.created"]})
    assert made.status_code == 201, made.text
    return made.json()["data"]


def new_project(client: httpx.Client) -> str:
    name = f"hook-{uuid.uuid4().hex[:8]}"
    assert client.post("/v1/projects", json={"name": name}).status_code == 201
    return name


def deliveries(client: httpx.Client, hook: dict) -> list[dict]:
    return client.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 100}).json()["data"]


def settled(client: httpx.Client, hook: dict, event_id: str) -> dict:
    def done() -> dict | None:
        found = [d for d in deliveries(client, hook) if d["event_id"] == event_id]
        return found[0] if found and found[0]["status"] != "pending" else None

    return wait_for(done, 60, "the delivery to settle")


def test_a_delivery_is_signed_and_verifies(live: httpx.Client, receiver: Receiver) -> None:
    hook = endpoint(live, f"{receiver.url}/ok")
    name = new_project(live)
    got = wait_for(lambda: receiver.of("/ok", name), what="the delivery")
    request = got[0]
    event = Webhook(hook["secret"]).verify(request["body"], request["headers"])
    assert event["type"] == "project.created" and event["data"]["name"] == name
    assert request["headers"]["webhook-id"] == event["id"]
    assert request["headers"]["X-Signature"] == request["headers"]["webhook-signature"]
    assert abs(int(request["headers"]["webhook-timestamp"]) - time.time()) < 60
    log = settled(live, hook, event["id"])
    assert log["status"] == "succeeded" and [a["status_code"] for a in log["attempts"]] == [200]
    one = live.get(f"/v1/webhooks/{hook['id']}/deliveries/{log['id']}").json()["data"]
    assert one["attempts"][0]["response"] == "ok"

    # Redelivery: the same bytes under the same webhook-id.
    again = live.post(f"/v1/webhooks/{hook['id']}/redeliver", json={"delivery_id": log["id"]})
    assert again.status_code == 202, again.text
    assert [d["id"] for d in again.json()["data"]] == [log["id"]]
    twice = wait_for(lambda: len(found := receiver.of("/ok", name)) == 2 and found, what="the redelivery")
    assert twice[1]["headers"]["webhook-id"] == event["id"] and twice[1]["body"] == request["body"]


def test_the_test_event_goes_to_one_endpoint(live: httpx.Client, receiver: Receiver) -> None:
    hook = endpoint(live, f"{receiver.url}/ok-test")
    other = endpoint(live, f"{receiver.url}/ok-other")
    sent = live.post(f"/v1/webhooks/{hook['id']}/test")
    assert sent.status_code == 202, sent.text
    event_id = sent.json()["data"]["event_id"]

    def arrived() -> list[dict]:
        with receiver.lock:
            return [r for r in receiver.requests if r["headers"].get("webhook-id") == event_id]

    got = wait_for(arrived, what="the test event")
    event = Webhook(hook["secret"]).verify(got[0]["body"], got[0]["headers"])
    assert event["type"] == "webhook.test" and event["data"]["webhook_id"] == hook["id"]
    assert {r["path"] for r in got} == {"/ok-test"}
    assert event_id not in {d["event_id"] for d in deliveries(live, other)}


def test_retries_follow_the_schedule_until_success(live: httpx.Client, receiver: Receiver) -> None:
    hook = endpoint(live, f"{receiver.url}/flaky")
    name = new_project(live)
    got = wait_for(lambda: len(found := receiver.of("/flaky", name)) == 3 and found, what="three attempts")
    assert len({r["headers"]["webhook-id"] for r in got}) == 1
    log = settled(live, hook, got[0]["headers"]["webhook-id"])
    assert log["status"] == "succeeded"
    assert [a["status_code"] for a in log["attempts"]] == [500, 500, 200]
    at = [datetime.fromisoformat(a["at"]) for a in log["attempts"]]
    assert at[1] - at[0] >= timedelta(minutes=1) and at[2] - at[1] >= timedelta(minutes=5)


def test_a_receiver_down_for_72_hours_fails_and_is_disabled(live: httpx.Client, receiver: Receiver) -> None:
    hook = endpoint(live, f"{receiver.url}/down")
    name = new_project(live)
    event_id = wait_for(lambda: receiver.of("/down", name), what="a first attempt")[0]["headers"][
        "webhook-id"
    ]
    log = settled(live, hook, event_id)
    assert log["status"] == "failed"
    at = [datetime.fromisoformat(a["at"]) for a in log["attempts"]]
    gaps = [b - a for a, b in itertools.pairwise(at)]
    expected = [60, 300, 1800, 7200, 43200]
    assert [round(g.total_seconds() / e, 1) >= 1.0 for g, e in zip(gaps, expected, strict=False)] == [
        True
    ] * 5
    assert at[-1] - at[0] <= timedelta(hours=72) and len(at) >= 9
    assert live.get(f"/v1/webhooks/{hook['id']}").json()["data"]["status"] == "disabled"
    feed = wait_for(lambda: live.get("/v1/events", params={"type": "webhook.disabled"}).json()["data"])
    assert hook["id"] in {e["data"]["id"] for e in feed}


def test_410_gone_disables_the_endpoint(live: httpx.Client, receiver: Receiver) -> None:
    hook = endpoint(live, f"{receiver.url}/gone")
    name = new_project(live)
    event_id = wait_for(lambda: receiver.of("/gone", name), what="the attempt")[0]["headers"]["webhook-id"]
    log = settled(live, hook, event_id)
    assert log["status"] == "failed" and [a["status_code"] for a in log["attempts"]] == [410]
    shown = live.get(f"/v1/webhooks/{hook['id']}").json()["data"]
    assert shown["status"] == "disabled" and "410" in shown["disabled_reason"]


def test_a_rotation_signs_with_both_secrets(live: httpx.Client, receiver: Receiver) -> None:
    hook = endpoint(live, f"{receiver.url}/ok-rotation")
    rotated = live.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={"grace_seconds": 7 * 86400}).json()[
        "data"
    ]
    name = new_project(live)
    request = wait_for(lambda: receiver.of("/ok-rotation", name), what="the delivery")[0]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (hook["secret"], rotated["secret"]):  # each alone verifies
        assert Webhook(secret).verify(request["body"], request["headers"])["data"]["name"] == name


def test_test_mode_simulates(stack: Stack, receiver: Receiver) -> None:
    with stack.client(stack.test_key) as test_mode:
        hook = endpoint(test_mode, f"{receiver.url}/ok")
        name = new_project(test_mode)

        def simulated() -> list[dict]:
            return [d for d in deliveries(test_mode, hook) if d["status"] == "simulated"]

        log = wait_for(simulated, what="a simulated delivery")[0]
    attempt = log["attempts"][0]
    assert attempt["request"]["webhook-id"] == log["event_id"] and attempt["request"]["webhook-signature"]
    assert receiver.of("/ok", name) == [], "test mode sent a request"


def test_kill_9_mid_stream_loses_nothing(stack: Stack, live: httpx.Client, receiver: Receiver) -> None:
    endpoint(live, f"{receiver.url}/ok-kill")
    names = [new_project(live) for _ in range(15)]
    old = stack.service_pid("webhooks")
    os.kill(old, signal.SIGKILL)
    names += [new_project(live) for _ in range(15)]  # made while the service is down
    stack.wait_restarted("webhooks", old, timeout=60)

    def everyone() -> bool:
        return all(receiver.of("/ok-kill", name) for name in names)

    wait_for(everyone, 60, "every event delivered")
    for name in names:  # a repeat after the crash carries the same webhook-id
        assert len({r["headers"]["webhook-id"] for r in receiver.of("/ok-kill", name)}) == 1
