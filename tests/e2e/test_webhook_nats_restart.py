"""The bus restarts in the middle of webhook deliveries and nothing is lost: a stream of events
(projects made one after another by a client that retries what failed, as a client should),
NATS stopped while a delivery is in flight and started again on the same port with the same
JetStream store, and every event the API acknowledged reaches the receiver, a repeat under the
same `webhook-id`. The services reconnect on their own; nothing restarts them.

Twice, on stacks of this module's own (stopping the bus disturbs no other module): a
nats-server of the test's (`stratus_testing.NatsServer`, given to `stratus up` as NATS_URL,
as a deployment's bus is), stopped until a write is refused and started again; and the
embedded nats-server `stratus up` runs (`Stack.restart_nats`: SIGTERM, and its supervisor
starts it again). The clock runs fast (600x) so that an attempt cut off by the outage is
retried within a second."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from stratus_contracts import keys
from stratus_testing import NatsServer, Stack, wait_until

pytestmark = pytest.mark.timeout(180)

SCALE = 600
RETRYABLE = {409, 429, 502, 503, 504}  # 409: idempotency_key_in_use, the first try still running


class Receiver:
    """Verifies every delivery with `standardwebhooks` and keeps it; answers 200. The first
    request waits until `release` is set, so a delivery is in flight while the test wants it."""

    def __init__(self) -> None:
        self.secret = ""
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.holding = threading.Event()  # the first request has arrived and waits
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:
                    return
                event = Webhook(receiver.secret).verify(body, dict(self.headers))
                if not receiver.holding.is_set():
                    receiver.holding.set()
                    receiver.release.wait(30)
                with receiver.lock:
                    receiver.got.append({"id": self.headers["webhook-id"], "event": event})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def by_name(self) -> dict[str, set[str]]:
        """Project name → the webhook-ids its `project.created` arrived under."""
        seen: dict[str, set[str]] = {}
        with self.lock:
            for r in self.got:
                seen.setdefault(r["event"]["data"]["name"], set()).add(r["id"])
        return seen


class Producer(threading.Thread):
    """Makes projects one after another until stopped; each create is retried with its
    Idempotency-Key until it is acknowledged (2xx). `acked` lists the names acknowledged,
    `refused` counts the tries that got no 2xx."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.client = stack.client(stack.live_key)
        self.client.timeout = httpx.Timeout(3.0)
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.refused = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                name = f"nats-{uuid.uuid4().hex[:10]}"
                self._acknowledged(name)
                self.acked.append(name)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.client.close()

    def _acknowledged(self, name: str) -> None:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        wait_until(lambda: self._create(name, headers), timeout=60.0, message=f"{name} acknowledged")

    def _create(self, name: str, headers: dict[str, str]) -> bool:
        try:
            made = self.client.post("/v1/projects", json={"name": name}, headers=headers)
        except httpx.TransportError:
            self.refused += 1
            return False
        if made.status_code == 201:
            return True
        assert made.status_code in RETRYABLE, made.text
        self.refused += 1
        return False


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(store_dir=tmp_path_factory.mktemp("restart-nats")) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Iterator[Stack]:
    env = {
        "STRATUS_ADMIN_KEY": keys.generate("live"),
        "STRATUS_CLOCK_SCALE": str(SCALE),
        "NATS_URL": nats_server.url,
        "STRATUS_REQUEST_TIMEOUT": "2",
    }
    with Stack(tmp_path_factory.mktemp("restart-stack"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose `stratus up` runs the bus itself, as the local stack does."""
    env = {"STRATUS_ADMIN_KEY": keys.generate("live"), "STRATUS_CLOCK_SCALE": str(SCALE)}
    with Stack(tmp_path_factory.mktemp("restart-embedded-stack"), env=env) as running:
        yield running


def test_a_nats_restart_mid_delivery_loses_no_event(stack: Stack, nats_server: NatsServer) -> None:
    """The bus stopped for as long as it takes a write to be refused, then started again."""

    def restart(producer: Producer, receiver: Receiver) -> None:
        nats_server.stop(keep_data=True)
        receiver.release.set()  # the held delivery's answer comes while the bus is down
        wait_until(lambda: producer.refused > 0, timeout=20.0, message="a write refused while NATS is down")
        nats_server.start()  # the same port, the same JetStream store

    deliveries_survive(stack, restart)


def test_the_stacks_own_nats_restarted_mid_delivery_loses_no_event(embedded: Stack) -> None:
    """`stratus up`'s own nats-server stopped; its supervisor starts it again (same port, same
    store) within a second."""
    deliveries_survive(embedded, lambda _, receiver: embedded.restart_nats(receiver.release.set))


def deliveries_survive(stack: Stack, restart: Callable[[Producer, Receiver], object]) -> None:
    """Events made before, during and after `restart` (which stops the bus, lets the held
    delivery answer while it is down, and starts it again): every acknowledged one arrives."""
    receiver = Receiver()
    producer = Producer(stack)
    try:
        with stack.client(stack.live_key) as live:
            made = live.post("/v1/webhooks", json={"url": receiver.url, "events": ["project.created"]})
            assert made.status_code == 201, made.text
            receiver.secret = made.json()["data"]["secret"]
            hook = made.json()["data"]["id"]

            producer.start()
            # A delivery in flight (the receiver holds it) and more events behind it.
            receiver.holding.wait(20)
            assert receiver.holding.is_set(), "no delivery arrived"
            wait_until(lambda: len(producer.acked) >= 10, timeout=20.0, message="10 events acknowledged")
            before = len(producer.acked)
            restart(producer, receiver)
            wait_until(
                lambda: len(producer.acked) >= before + 10,
                timeout=60.0,
                message="10 more events acknowledged after the restart",
            )
            producer.stop.set()
            producer.join(70)
            assert producer.error is None, producer.error
            acked = list(producer.acked)

            def delivered() -> bool:
                return set(acked) <= set(receiver.by_name())

            try:
                wait_until(delivered, timeout=60.0, message="every acknowledged event delivered")
            except TimeoutError:
                missing = sorted(set(acked) - set(receiver.by_name()))
                raise AssertionError(
                    f"{len(missing)} of {len(acked)} never delivered: {missing[:5]}…"
                ) from None

            seen = receiver.by_name()
            repeated = {name: ids for name, ids in seen.items() if len(ids) != 1}
            assert not repeated, f"a repeat under another webhook-id: {repeated}"
            # Each arrived under its event's id, as the event feed (which follows the stream on
            # its own, so it may be a moment behind) names it.
            feed: dict[str, str] = {}

            def in_feed() -> bool:
                cursor = None
                while True:
                    params = {
                        "type": "project.created",
                        "limit": 100,
                        **({"cursor": cursor} if cursor else {}),
                    }
                    page = live.get("/v1/events", params=params).json()
                    feed.update({e["data"]["name"]: e["id"] for e in page["data"]})
                    if not page["meta"]["has_more"]:
                        return set(acked) <= set(feed)
                    cursor = page["meta"]["next_cursor"]

            wait_until(in_feed, timeout=30.0, message="every acknowledged event in the event feed")
            assert {name: seen[name] for name in acked} == {name: {feed[name]} for name in acked}
            # And the delivery log agrees: each acknowledged event's delivery succeeded.
            logs = live.get(f"/v1/webhooks/{hook}/deliveries", params={"limit": 100, "status": "failed"})
            assert logs.status_code == 200 and logs.json()["data"] == []
            assert live.get(f"/v1/webhooks/{hook}").json()["data"]["status"] == "enabled"
    finally:
        producer.stop.set()
        receiver.release.set()
        if producer.is_alive():
            producer.join(70)
        receiver.server.shutdown()
        receiver.server.server_close()
