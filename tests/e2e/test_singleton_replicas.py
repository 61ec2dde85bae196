"""Work that must run once however many replicas run: two webhooks replicas on one bus send each
delivery once (only the holder of the service's lease runs the consumer and the dispatcher),
and when the holder is killed another replica takes the lease and the deliveries go on."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nats
import pytest

from stratus_kit.lease import BUCKET
from stratus_testing import Stack, wait_until


class Receiver:
    """Counts deliveries by `webhook-id`."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                if len(self.rfile.read(length)) < length:
                    return  # cut off by a killed sender: not a delivery
                with receiver.lock:
                    receiver.ids[self.headers["webhook-id"]] += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/in"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.ids)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


async def _holder(nats_url: str, name: str) -> str | None:
    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(BUCKET)
        try:
            entry = await kv.get(name)
        except nats.js.errors.KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None
    finally:
        await nc.close()


def holder(stack: Stack, name: str) -> str | None:
    return asyncio.run(_holder(stack.nats_url, name))


def test_two_webhooks_replicas_deliver_once_and_a_standby_takes_over(
    tmp_path: Path, receiver: Receiver
) -> None:
    with (
        Stack(tmp_path / "data", env={"STRATUS_LEASE_TTL": "2"}) as stack,
        stack.extra_service("webhooks") as extra,
        stack.client(stack.live_key) as client,
    ):
        made = client.post("/v1/webhooks", json={"url": receiver.url, "events": ["project.created"]})
        assert made.status_code == 201, made.text

        def create(n: int) -> set[str]:
            ids = set()
            for _ in range(n):
                created = client.post("/v1/projects", json={"name": f"r-{uuid.uuid4().hex[:8]}"})
                assert created.status_code == 201, created.text
                ids.add(created.json()["data"]["id"])
            return ids

        def delivered(count: int) -> bool:
            return sum(1 for _ in receiver.counts()) >= count

        create(10)
        wait_until(lambda: delivered(10), timeout=30)
        first = holder(stack, "webhooks")
        assert first is not None
        pid = int(first.split("-")[1])
        assert pid in {stack.service_pid("webhooks"), extra}

        os.kill(pid, signal.SIGKILL)  # the holder dies without letting go: its key expires
        create(10)
        wait_until(lambda: delivered(20), timeout=60)
        second = holder(stack, "webhooks")
        assert second is not None and second != first

        counts = receiver.counts()
        assert len(counts) == 20
        # Once each: never two replicas sending the same delivery.
        assert set(counts.values()) == {1}, counts
