"""One replica at a time: a lease held in the JetStream KV bucket `stratus_leases`.

Some of a service's work must run once however many replicas there are: the webhooks service's
consumer and dispatcher (two would send every delivery twice), the deployments orchestrator (two
would build every deployment twice). Every replica serves commands and queries; a `Service` with
`singleton=True` runs its consumers and background tasks only while it holds the lease named
after the service.

The lease is a KV key: taken with `create` (only if absent), kept with `update` against the
revision last written (compare-and-set), so two replicas can never both believe they took it.
The bucket's TTL expires a holder that stopped renewing (killed, or cut off from NATS); a
standby takes it at its next try after that. A holder that cannot renew for 3/4 of the TTL stops
its work before its key can expire, so the old and the new holder do not overlap while clocks
and the server agree to within the remaining quarter. A holder that stops cleanly deletes the
key, so a standby takes over at its next try rather than after the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

from nats.js.api import KeyValueConfig
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from stratus_bus import Bus

log = logging.getLogger("stratus.kit.lease")

BUCKET = "stratus_leases"


def ttl() -> float:
    return float(os.environ.get("STRATUS_LEASE_TTL", "10"))


async def bucket(bus: Bus, seconds: float) -> KeyValue:
    return await bus.key_value(KeyValueConfig(bucket=BUCKET, history=1, ttl=seconds))


class Lease:
    def __init__(self, kv: KeyValue, name: str, holder: str, seconds: float) -> None:
        self.kv = kv
        self.name = name
        self.holder = holder.encode()
        self.ttl = seconds

    async def _take(self) -> int | None:
        try:
            return await self.kv.create(self.name, self.holder)
        except KeyWrongLastSequenceError:
            return None  # somebody holds it
        except Exception as exc:  # NATS away: try again later
            log.debug("lease %s not taken: %s", self.name, exc)
            return None

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Forever: wait to take the lease, run `work` while it is held, stop `work` once it is
        lost (and take it again when it can). Returns when `work` returns by itself."""
        loop = asyncio.get_running_loop()
        step = self.ttl / 4
        while True:
            revision = await self._take()
            if revision is None:
                await asyncio.sleep(step)
                continue
            log.info("lease taken: running %s here", self.name, extra={"lease": self.name})
            renewed = loop.time()
            lost = False
            task = asyncio.create_task(work(), name=f"lease-{self.name}")  # type: ignore[arg-type]
            try:
                while not task.done():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(task), step)
                    if task.done():
                        break
                    try:
                        revision = await self.kv.update(self.name, self.holder, last=revision)
                        renewed = loop.time()
                    except KeyWrongLastSequenceError:
                        log.warning("lease lost to another replica", extra={"lease": self.name})
                        lost = True
                    except Exception as exc:
                        if loop.time() - renewed >= 0.75 * self.ttl:
                            log.warning(
                                "lease not renewed for %.1fs (%s): stopping", loop.time() - renewed, exc,
                                extra={"lease": self.name},
                            )  # fmt: skip
                            lost = True
                    if lost:
                        break
            finally:
                # The work stops before the key goes, so a standby never runs it alongside.
                ended = task.done() and not task.cancelled() and task.exception() is None
                crashed = task.done() and not task.cancelled() and task.exception() is not None
                await _stop(task)
                if crashed:
                    log.error("work under lease %s failed", self.name, exc_info=task.exception())
                if not lost:  # a clean stop, an end or a crash: let a standby (or us) take it now
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.kv.delete(self.name, last=revision), 2.0)
            if ended:
                return
            if crashed:
                await asyncio.sleep(step)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
