"""Webhook deliveries when a receiver asks for time or goes away: `Retry-After` on a 429 or 503
pushes the next attempt later than the schedule would (never sooner), and after an outage a
redelivery by time range sends again exactly the failed deliveries made in that range, each
under its original `webhook-id`. A real receiver (an HTTP server in this process) verifying
every request with `standardwebhooks`; the service's clock runs 600 times fast
(`STRATUS_CLOCK_SCALE`: the schedule's first minute is a tenth of a second), with a one-hour
retry window, so a receiver down from the start fails its deliveries in under four seconds.
One stack for the module."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from stratus_contracts import keys
from stratus_testing import Stack, wait_until

SCALE = 600  # service seconds per real second
WINDOW = 3600  # seconds of retries: attempts at 0, 1 min, 6 min, 36 min, then failed
SLACK = 1.0 * SCALE  # a real second of the dispatcher's own latency, in service seconds

# Answers of the first attempt at each path (status, Retry-After); later attempts get 200.
FIRST = {"/429": (429, "600"), "/503": (503, "900"), "/503-short": (503, "1")}


class Receiver:
    """Verifies and keeps every request. `/429`, `/503`, `/503-short`: the answer in FIRST to an
    event's first attempt, then 200. `/outage`: 503 to events of projects named `down-…` while
    `outage` is set, 200 otherwise."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.secrets: dict[str, str] = {}  # path → the endpoint's signing secret
        self.outage = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                headers = dict(self.headers)
                event = Webhook(receiver.secrets[self.path]).verify(body, headers)
                with receiver.lock:
                    seen = sum(
                        1
                        for r in receiver.requests
                        if r["path"] == self.path and r["id"] == headers["webhook-id"]
                    )
                    receiver.requests.append(
                        {"path": self.path, "id": headers["webhook-id"], "event": event, "body": body}
                    )
                status, retry_after = 200, None
                if self.path in FIRST and seen == 0:
                    status, retry_after = FIRST[self.path]
                elif (
                    self.path == "/outage"
                    and receiver.outage.is_set()
                    and event["data"]["name"].startswith("down-")
                ):
                    status = 503
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                answer = f"answered {status}".encode()
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, path: str, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path and r["event"]["data"]["name"] == name]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "STRATUS_ADMIN_KEY": keys.generate("live"),
        "STRATUS_CLOCK_SCALE": str(SCALE),
        "STRATUS_WEBHOOK_RETRY_WINDOW": str(WINDOW),
    }
    with Stack(tmp_path_factory.mktemp("hooks-recovery-stack"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()
    made.server.server_close()


@pytest.fixture(scope="module")
def live(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.live_key) as client:
        yield client


def endpoint(client: httpx.Client, receiver: Receiver, path: str) -> dict[str, Any]:
    made = client.post("/v1/webhooks", json={"url": receiver.url + path, "events": ["project.created"]})
    assert made.status_code == 201, made.text
    hook = made.json()["data"]
    receiver.secrets[path] = hook["secret"]
    return hook


def new_project(client: httpx.Client, prefix: str = "hook") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    made = client.post("/v1/projects", json={"name": name})
    assert made.status_code == 201, made.text
    return name


def deliveries(client: httpx.Client, hook: dict[str, Any]) -> list[dict[str, Any]]:
    got = client.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 100})
    assert got.status_code == 200, got.text
    return got.json()["data"]


def delivery_of(client: httpx.Client, hook: dict[str, Any], event_id: str) -> dict[str, Any] | None:
    found = [d for d in deliveries(client, hook) if d["event_id"] == event_id]
    return found[0] if found else None


def settled(client: httpx.Client, hook: dict[str, Any], event_id: str, timeout: float = 30.0) -> dict:
    def done() -> dict[str, Any] | None:
        found = delivery_of(client, hook, event_id)
        return found if found is not None and found["status"] != "pending" else None

    return wait_until(done, timeout=timeout, message=f"the delivery of {event_id} to settle")


def first_request(receiver: Receiver, path: str, name: str) -> dict[str, Any]:
    return wait_until(lambda: receiver.of(path, name), timeout=20.0, message=f"a delivery to {path}")[0]


@pytest.mark.parametrize(
    ("path", "least"),
    [("/429", 600), ("/503", 900), ("/503-short", 60)],
    ids=["429-retry-after-10m", "503-retry-after-15m", "503-retry-after-shorter-than-the-schedule"],
)
def test_retry_after_pushes_the_next_attempt(
    live: httpx.Client, receiver: Receiver, path: str, least: int
) -> None:
    """The schedule's next try is a minute after the first failure; a `Retry-After` longer than
    that is waited instead (measured on the service's clock, as the attempts record it), and a
    shorter one changes nothing."""
    hook = endpoint(live, receiver, path)
    name = new_project(live)
    event_id = first_request(receiver, path, name)["id"]
    log = settled(live, hook, event_id)
    assert log["status"] == "succeeded", log
    status, retry_after = FIRST[path]
    assert [a["status_code"] for a in log["attempts"]] == [status, 200]
    first, second = (datetime.fromisoformat(a["at"]) for a in log["attempts"])
    gap = (second - first).total_seconds()
    assert least <= gap < least + SLACK, (retry_after, gap)
    # The delivery log shows the refused attempt, its status and the answer's first bytes.
    one = live.get(f"/v1/webhooks/{hook['id']}/deliveries/{log['id']}")
    assert one.status_code == 200, one.text
    refused = one.json()["data"]["attempts"][0]
    assert (refused["status_code"], refused["response"], refused["error"]) == (
        status,
        f"answered {status}",
        None,
    )
    assert {r["id"] for r in receiver.of(path, name)} == {event_id}
    assert live.delete(f"/v1/webhooks/{hook['id']}").status_code == 200


def test_redelivery_by_time_range_resends_the_failed_ones_in_it(
    live: httpx.Client, receiver: Receiver
) -> None:
    hook = endpoint(live, receiver, "/outage")
    receiver.outage.set()
    # In the order made: before the range, three in it (one the receiver took), after it.
    names = {
        "before": new_project(live, "down"),
        "first": new_project(live, "down"),
        "taken": new_project(live, "up"),
        "second": new_project(live, "down"),
        "after": new_project(live, "down"),
    }
    ids = {k: first_request(receiver, "/outage", n)["id"] for k, n in names.items()}
    logs = {k: settled(live, hook, ids[k]) for k in names}
    assert {k: log["status"] for k, log in logs.items()} == {
        "before": "failed",
        "first": "failed",
        "taken": "succeeded",
        "second": "failed",
        "after": "failed",
    }
    for k in ("before", "first", "second", "after"):
        # Refused until the window closed, or until the first of them to fail disabled the
        # endpoint (then the rest fail at their next try, unsent).
        attempts = logs[k]["attempts"]
        assert attempts[0]["status_code"] == 503
        assert all(a["status_code"] == 503 or a["error"] == "The endpoint is disabled." for a in attempts)
    made = [datetime.fromisoformat(logs[k]["created"]) for k in names]
    assert made == sorted(made)
    # Failing for the whole window disabled the endpoint; the receiver is back, so is it.
    wait_until(
        lambda: live.get(f"/v1/webhooks/{hook['id']}").json()["data"]["status"] == "disabled",
        timeout=10.0,
        message="the endpoint disabled",
    )
    receiver.outage.clear()
    enabled = live.patch(f"/v1/webhooks/{hook['id']}", json={"status": "enabled"})
    assert enabled.status_code == 200, enabled.text
    sent = {k: len(receiver.of("/outage", n)) for k, n in names.items()}

    # The range as a client elsewhere writes it: another UTC offset, the same instants.
    zone = timezone(timedelta(hours=5, minutes=30))
    since = datetime.fromisoformat(logs["first"]["created"]).astimezone(zone).isoformat()
    until = datetime.fromisoformat(logs["after"]["created"]).astimezone(zone).isoformat()
    again = live.post(f"/v1/webhooks/{hook['id']}/redeliver", json={"since": since, "until": until})
    assert again.status_code == 202, again.text
    queued = again.json()["data"]
    assert sorted(d["id"] for d in queued) == sorted(logs[k]["id"] for k in ("first", "second"))
    assert {d["status"] for d in queued} == {"pending"}

    for k in ("first", "second"):
        done = settled(live, hook, ids[k])
        assert done["status"] == "succeeded", done
        assert len(done["attempts"]) == len(logs[k]["attempts"]) + 1
        assert done["attempts"][-1]["status_code"] == 200
        got = receiver.of("/outage", names[k])
        assert len(got) == sent[k] + 1
        assert {r["id"] for r in got} == {ids[k]}  # the original webhook-id, the same bytes
        assert len({r["body"] for r in got}) == 1
    for k in ("before", "after", "taken"):  # outside the range, or never failed: left alone
        assert delivery_of(live, hook, ids[k])["status"] == logs[k]["status"]  # type: ignore[index]
        assert len(receiver.of("/outage", names[k])) == sent[k]
    assert json.loads(receiver.of("/outage", names["first"])[-1]["body"])["id"] == ids["first"]
