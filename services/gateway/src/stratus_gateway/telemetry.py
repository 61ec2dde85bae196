"""Request telemetry: every authenticated request becomes a record on the `TELEMETRY` stream,
without the request ever waiting for the bus.

The outer middleware appends a tuple to a bounded in-memory buffer (`Recorder.add`: a deque
append, no encoding); a background task takes up to `BATCH` records every `INTERVAL` (sooner
when a batch is full), encodes them as one MessagePack `RequestBatch` and publishes it with a
JetStream ack, awaited there. A full buffer, or a publish that fails, drops records: they are
counted (`dropped`, shown by `/readyz` as `telemetry.dropped_total`) and the gateway logs a
warning with the count. `STRATUS_TELEMETRY=0` turns recording off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import deque
from typing import Any

import msgspec

from stratus_bus import Bus
from stratus_contracts import metrics as c

log = logging.getLogger("stratus.gateway.telemetry")

BATCH = 1000
INTERVAL = 0.1
CAPACITY = 100_000  # ~10 s at 10,000 requests/s: a bus away longer than that loses records
_encoder = msgspec.msgpack.Encoder()


def enabled() -> bool:
    return os.environ.get("STRATUS_TELEMETRY", "1") != "0"


class Recorder:
    def __init__(self, bus: Bus, *, capacity: int = CAPACITY) -> None:
        self.bus = bus
        self.capacity = capacity
        self.buffer: deque[tuple[Any, ...]] = deque()
        self.dropped = 0
        self.published = 0
        self._reported = 0  # `dropped` as of the last warning
        self._full = asyncio.Event()
        # Batch ids: a random prefix once, then a counter (a uuid4 a batch showed in profiles).
        self._origin, self._sent = uuid.uuid4().hex, 0
        self._task: asyncio.Task[None] | None = None

    def add(self, record: tuple[Any, ...]) -> None:
        """From the request path: O(1), never awaits."""
        buffer = self.buffer
        if len(buffer) >= self.capacity:
            self.dropped += 1
            return
        buffer.append(record)
        if len(buffer) == BATCH:
            self._full.set()

    async def start(self) -> None:
        await self.bus.ensure_telemetry_stream()
        self._task = asyncio.create_task(self._run(), name="telemetry-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # last records out, if the bus is still there
            await asyncio.wait_for(self.flush(), timeout=2.0)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(INTERVAL):
                    await self._full.wait()
            self._full.clear()
            await self.flush()

    async def flush(self) -> None:
        """Publish everything buffered, a batch per message."""
        while self.buffer:
            take = min(len(self.buffer), BATCH)
            popleft = self.buffer.popleft
            # The tuples are `RequestRecord`s' fields in order, and a record is an array on the
            # wire (array_like): encoded as they are, the bytes are a `RequestBatch`'s.
            payload = _encoder.encode({"records": [popleft() for _ in range(take)]})
            try:
                # Nats-Msg-Id: a publish whose ack was lost and is never retried cannot double
                # count, and one JetStream de-duplicates if it ever is.
                self._sent += 1
                msg_id = f"{self._origin}-{self._sent}"  # unique per gateway process and batch
                await self.bus.publish_durably(c.REQUESTS_SUBJECT, payload, msg_id=msg_id)
                self.published += take
            except Exception as exc:
                self.dropped += take
                log.warning("telemetry publish failed: %s", type(exc).__name__)
        if self.dropped != self._reported:
            log.warning(
                "telemetry records dropped",
                extra={"dropped": self.dropped - self._reported, "dropped_total": self.dropped},
            )
            self._reported = self.dropped

    def stats(self) -> dict[str, int]:
        return {
            "dropped_total": self.dropped,
            "published_total": self.published,
            "buffered": len(self.buffer),
        }


def now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["BATCH", "Recorder", "enabled", "now_ms"]
