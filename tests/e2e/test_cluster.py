"""The production shape on loopback: a 3-node NATS cluster (JetStream R3, `sync_interval:
always`), two replicas of every service and two gateways behind one port. The API works through
both gateways; then, during a stream of writes, one NATS node and one replica of every service
are killed with `kill -9`: every acknowledged write is still there afterwards, none is doubled,
and what clients saw go wrong was only ever retryable."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import nats

from stratus_contracts.services import PROCESSES
from stratus_testing import NatsCluster, Stack, wait_until

RETRYABLE = {409, 429, 502, 503, 504}


class Writer(threading.Thread):
    """Creates projects one after another, each with its own Idempotency-Key, retrying it on a
    retryable answer or a dropped connection until it gets a 2xx (as the SDK does)."""

    def __init__(self, stack: Stack, tag: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.tag = stack, tag
        self.acknowledged: dict[str, str] = {}  # name -> project id
        self.errors: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        with self.stack.client(self.stack.live_key) as client:
            while not self.stop.is_set():
                name, key = f"{self.tag}-{i}", uuid.uuid4().hex
                while not self.stop.is_set():
                    try:
                        r = client.post("/v1/projects", json={"name": name}, headers={"Idempotency-Key": key})
                    except httpx.TransportError as exc:
                        self.errors[type(exc).__name__] += 1
                        continue
                    if r.status_code == 201:
                        self.acknowledged[name] = r.json()["data"]["id"]
                        break
                    self.errors[str(r.status_code)] += 1
                    if r.status_code not in RETRYABLE:
                        break  # not retryable: a failure of the test, reported below
                    time.sleep(0.05)
                i += 1


class Reader(threading.Thread):
    """Reads through a fresh connection each time, as new clients arrive: once the killed gateway
    has been replaced, none may be refused or reset (a gateway listens only when it is ready)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.answers: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with self.stack.client(self.stack.live_key) as client:
                    self.answers[str(client.get("/v1/me").status_code)] += 1
            except httpx.TransportError as exc:
                self.answers[type(exc).__name__] += 1


class Receiver:
    """Counts webhook deliveries by `webhook-id`."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.ids[self.headers["webhook-id"]] += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/in"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def workflow_through_both_gateways(stack: Stack) -> None:
    """A user's day across the replicas: each step on a fresh connection (so on either gateway,
    and either replica behind it), each read seeing what another wrote."""
    receiver = Receiver()

    def fresh() -> httpx.Client:
        return stack.client(stack.live_key)

    try:
        with fresh() as c:
            hook = c.post("/v1/webhooks", json={"url": receiver.url, "events": ["project.created"]})
            assert hook.status_code == 201, hook.text
        with fresh() as c:
            project = c.post("/v1/projects", json={"name": f"day-{uuid.uuid4().hex[:6]}"}).json()["data"]
        with fresh() as c:
            envs = c.get(f"/v1/projects/{project['id']}/envs").json()["data"]
            env_id = next(e["id"] for e in envs if e["name"] == "production")
        with fresh() as c:
            made = c.post(f"/v1/envs/{env_id}/vars", json={"key": "TOKEN", "value": "s3cret", "secret": True})
            assert made.status_code == 201, made.text
        with fresh() as c:
            [var] = c.get(f"/v1/envs/{env_id}/vars").json()["data"]
            assert (var["key"], var["redacted"]) == ("TOKEN", True)
        # The delivery goes out once (the webhooks replicas share it through their lease), and
        # the event is in the feed whichever replica of audit answers.
        wait_until(lambda: len(receiver.ids) == 1, timeout=30)
        with fresh() as c:
            wait_until(
                lambda: any(
                    e["type"] == "project.created" and e["data"]["id"] == project["id"]
                    for e in c.get("/v1/events", params={"type": "project.created"}).json()["data"]
                ),
                timeout=30,
            )
        assert set(receiver.ids.values()) == {1}
    finally:
        receiver.server.shutdown()


async def replicas_of(url: str, stream: str) -> int:
    nc = await nats.connect(url.split(","))
    try:
        return (await nc.jetstream().stream_info(stream)).config.num_replicas or 1
    finally:
        await nc.close()


def test_a_cluster_loses_nothing_acknowledged_when_a_node_and_a_replica_each_die(tmp_path: Path) -> None:
    env = {"STRATUS_REPLICAS": "2", "STRATUS_STREAM_REPLICAS": "3", "STRATUS_LEASE_TTL": "2"}
    with (
        NatsCluster(tmp_path / "nats") as cluster,
        Stack(tmp_path / "data", env={**env, "NATS_URL": cluster.url}) as stack,
    ):
        children = stack.info()["services"]
        assert {"gateway", "gateway-2", "projects", "projects-2"} <= set(children)
        assert asyncio.run(replicas_of(cluster.url, "EVENTS")) == 3
        # Through both gateways: a write through one is read through the other.
        clients = [stack.client(stack.live_key) for _ in range(8)]
        try:
            made = [
                c.post("/v1/projects", json={"name": f"both-{i}"}).json()["data"]
                for i, c in enumerate(clients)
            ]
            for client, project in zip(reversed(clients), made, strict=True):
                assert client.get(f"/v1/projects/{project['id']}").json()["data"] == project
        finally:
            for c in clients:
                c.close()

        workflow_through_both_gateways(stack)

        writer = Writer(stack, f"w{uuid.uuid4().hex[:4]}")
        writer.start()
        wait_until(lambda: len(writer.acknowledged) >= 20, timeout=30)
        cluster.kill(1)
        for name in [s.name for s in PROCESSES if s.name != "metrics"]:
            os.kill(children[f"{name}-2"], signal.SIGKILL)
        before = len(writer.acknowledged)
        # The old gateway is gone once the supervisor has started its replacement.
        wait_until(lambda: stack.info()["services"]["gateway-2"] != children["gateway-2"], timeout=30)
        reader = Reader(stack)
        reader.start()
        wait_until(lambda: len(writer.acknowledged) >= before + 40, timeout=60)
        wait_until(lambda: sum(reader.answers.values()) >= 50, timeout=60)
        writer.stop.set()
        reader.stop.set()
        writer.join(30)
        reader.join(30)

        assert set(reader.answers) <= {"200"} | {str(s) for s in RETRYABLE}, reader.answers

        assert set(writer.errors) <= {str(s) for s in RETRYABLE} | {
            "ReadTimeout",
            "ConnectError",
            "RemoteProtocolError",
            "ReadError",
            "WriteError",
        }, writer.errors
        with stack.client(stack.live_key) as client:
            for name, project_id in writer.acknowledged.items():
                got = client.get(f"/v1/projects/{project_id}")
                assert got.status_code == 200 and got.json()["data"]["name"] == name
            listed: Counter[str] = Counter()
            cursor = None
            while True:
                page = client.get(
                    "/v1/projects", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
                ).json()
                listed.update(p["name"] for p in page["data"] if p["name"].startswith(writer.tag))
                if not page["meta"]["has_more"]:
                    break
                cursor = page["meta"]["next_cursor"]
        # Each acknowledged write once; a write cut off before its answer may exist once too.
        assert set(writer.acknowledged) <= set(listed)
        assert all(count == 1 for count in listed.values()), [n for n, k in listed.items() if k > 1]
