"""The dispatcher: the webhooks service's background task that sends due deliveries, signed, and
records each attempt (`RecordAttempt`), which decides what comes next by the retry schedule.

Deliveries queue per endpoint, and each endpoint has a worker of its own, so one slow or dead
receiver never delays another. A worker sends its endpoint's deliveries one at a time, oldest
due first. Requests go through the SSRF guard's session (`ssrf.guarded_session`: the address is
resolved and checked at every connect, redirects are not followed, 10 s timeout). In test mode
nothing is sent: the attempt records the signed request that would have gone, as `simulated`.

The client is aiohttp rather than httpx: sending a delivery with httpx cost ~1 ms of CPU on the
service's one event loop, with aiohttp ~0.1 ms (docs/performance.md, "Webhook deliveries").

It hears of new and requeued deliveries from the partitions' commits and otherwise sleeps until
the next one is due by the service's clock (`clock.CLOCK`, which a test may run fast).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

import aiohttp

from stratus_bus import Bus
from stratus_kit import Local
from stratus_webhooks import domain, handlers, signing, ssrf
from stratus_webhooks.clock import CLOCK, Clock

log = logging.getLogger("stratus.webhooks.dispatch")

RESPONSE_EXCERPT = 512  # bytes of an answer's body kept in the delivery log
POLL = 1.0  # real seconds between looks when nothing is due sooner
LOAD_BATCH = 64  # deliveries a worker loads in one query
USER_AGENT = "Stratus-Webhooks/1"


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(when.timestamp() - now, 0.0)
    return None


class Dispatcher:
    def __init__(self, bus: Bus, local: Local, clock: Clock = CLOCK) -> None:
        self.bus = bus
        self.local = local
        self.clock = clock
        self.keyring = local.deps["keyring"]
        self.policy = handlers.policy()
        self.client = ssrf.guarded_session(self.policy)
        self.queues: dict[tuple[str, str], deque[uuid.UUID]] = {}
        self.queued: set[uuid.UUID] = set()
        self.workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, entries: list[tuple[int, Any]]) -> None:
        loop = self._loop
        if loop is not None and any(
            isinstance(e, domain.DeliveryScheduled | domain.DeliveryRequeued) for _, e in entries
        ):
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        for part in self.local.partitions.values():
            part.watchers.append(self.watch)
        try:
            while True:
                self._wake.clear()
                wait = POLL
                for mode in self.local.partitions:
                    for delivery_id, endpoint, _ in await self.local.ask(handlers.DueDeliveries(mode=mode)):
                        self._enqueue(mode, endpoint, delivery_id)
                    soonest = await self.local.ask(handlers.NextDue(mode=mode))
                    if soonest is not None:
                        when = datetime.strptime(soonest, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                        wait = min(wait, self.clock.real_seconds(when))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait, 0.005)):
                        await self._wake.wait()
        finally:
            for part in self.local.partitions.values():
                with contextlib.suppress(ValueError):
                    part.watchers.remove(self.watch)
            workers = list(self.workers.values())
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.client.close()

    def _enqueue(self, mode: str, endpoint: str, delivery_id: uuid.UUID) -> None:
        if delivery_id in self.queued:
            return
        key = (mode, endpoint)
        self.queues.setdefault(key, deque()).append(delivery_id)
        self.queued.add(delivery_id)
        if key not in self.workers:
            self.workers[key] = asyncio.create_task(self._work(key), name=f"deliver-{endpoint}")

    async def _work(self, key: tuple[str, str]) -> None:
        mode, _ = key
        queue = self.queues[key]
        try:
            while queue:
                # One query loads what is queued (up to a batch), not one per delivery: each
                # query is a hop to the partition's reader and a check of the store's position.
                batch = [queue.popleft() for _ in range(min(len(queue), LOAD_BATCH))]
                try:
                    loaded = await self.local.ask(handlers.LoadDeliveries(mode=mode, delivery_ids=batch))
                    for delivery, endpoint in loaded:
                        try:
                            await self._deliver(mode, delivery, endpoint)
                        except Exception:
                            log.exception("a delivery attempt could not be recorded")
                finally:
                    self.queued.difference_update(batch)
        finally:
            self.workers.pop(key, None)
            self.queues.pop(key, None)
            self._wake.set()  # what failed to record is due again: look

    def _secrets(self, endpoint: domain.Endpoint, now: datetime) -> list[str]:
        sealed = [endpoint.secret]
        if (
            endpoint.previous is not None
            and endpoint.previous_expires is not None
            and endpoint.previous_expires > now
        ):
            sealed.append(endpoint.previous)
        return [self.keyring.unwrap(endpoint.id, s.kek, s.box).decode("ascii") for s in sealed]

    async def _deliver(self, mode: str, delivery: domain.Delivery, endpoint: domain.Endpoint) -> None:
        delivery_id = delivery.id
        if delivery.status != "pending":
            return
        now = self.clock()
        if endpoint.deleted or endpoint.status != "enabled":
            attempt = domain.Attempt(
                at=now, status_code=None, duration_ms=0, response="", error="The endpoint is disabled."
            )
            await self._record(mode, delivery_id, attempt, ok=False, final=True)
            return
        # The signed time is the wall clock's: receivers check it against theirs.
        headers = signing.headers(
            delivery.event_id, int(time.time()), delivery.body, self._secrets(endpoint, now)
        )
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        if mode == "test":
            attempt = domain.Attempt(at=now, status_code=None, duration_ms=0, response="", request=headers)
            await self._record(mode, delivery_id, attempt, ok=True, simulated=True)
            return
        started = time.monotonic()
        status: int | None = None
        excerpt, error, wait, disable = "", None, None, None
        try:
            ssrf.check_url(endpoint.url, self.policy)  # the policy may have changed since creation
            async with self.client.post(
                endpoint.url, data=delivery.body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                excerpt = (await _excerpt(response)).decode("utf-8", "replace")
                if status == 410:
                    disable = "The endpoint answered 410 Gone."
                elif status in (429, 503):
                    wait = retry_after(response.headers.get("retry-after"), time.time())
        except ssrf.Forbidden as exc:
            error = f"Refused by the SSRF guard: {exc.reason}"
        except TimeoutError:
            error = "No answer within 10 s."
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        took = int((time.monotonic() - started) * 1000)
        attempt = domain.Attempt(
            at=self.clock(), status_code=status, duration_ms=took, response=excerpt, error=error
        )
        ok = status is not None and 200 <= status < 300
        await self._record(
            mode, delivery_id, attempt, ok=ok, final=disable is not None, retry_after=wait, disable=disable
        )

    async def _record(
        self, mode: str, delivery_id: uuid.UUID, attempt: domain.Attempt, **outcome: Any
    ) -> None:
        await self.local.ask(
            handlers.RecordAttempt(mode=mode, delivery_id=delivery_id, attempt=attempt, **outcome)
        )


async def _excerpt(response: aiohttp.ClientResponse) -> bytes:
    """The first bytes of an answer's body; a longer body is not read on (its connection closes)."""
    got = b""
    while len(got) < RESPONSE_EXCERPT and not response.content.at_eof():
        chunk = await response.content.read(RESPONSE_EXCERPT - len(got))
        if not chunk:
            break
        got += chunk
    if not response.content.at_eof():
        response.close()
    return got


async def dispatch(bus: Bus, local: Local) -> None:
    await Dispatcher(bus, local).run()
