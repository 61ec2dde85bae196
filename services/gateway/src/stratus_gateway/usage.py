"""When each API key was last used, kept in the JetStream KV bucket `stratus_key_usage`.

Every replica records a key's use at most once a minute, so a busy key costs one KV write a
minute per replica, not one per request. Reads (`last_used`) serve the key listings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import nats
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from stratus_bus import Bus

BUCKET = "stratus_key_usage"
INTERVAL = 60.0
log = logging.getLogger("stratus.gateway.usage")


class KeyUsage:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._written: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, bus: Bus) -> KeyUsage:
        return cls(await bus.key_value(KeyValueConfig(bucket=BUCKET, history=1)))

    def record(self, key_id: str) -> None:
        """Note a use of `key_id`; writes in the background, at most once per INTERVAL."""
        now = time.monotonic()
        if now - self._written.get(key_id, -INTERVAL) < INTERVAL:
            return
        self._written[key_id] = now
        task = asyncio.create_task(self._write(key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, key_id: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            await self.kv.put(key_id, stamp.encode())
        except nats.errors.Error as exc:
            log.warning("could not record key use: %s", exc)

    async def last_used(self, key_ids: list[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for key_id in key_ids:
            with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                entry = await self.kv.get(key_id)
                if entry.value:
                    found[key_id] = datetime.fromisoformat(entry.value.decode())
        return found
