"""The sandbox reset: every service drops its test-mode data, live data untouched.

The reset is an **epoch**, a number in the JetStream KV bucket `stratus_sandbox` (key `epoch`,
with the time it was set). `reset(bus)` raises it (compare-and-set), then purges the test-mode
events (`evt.test.>`) from the `EVENTS` stream and the gateway's test-mode idempotency records
(`$KV.stratus_idempotency.test.>`, so that a retried test-mode write runs against the empty
sandbox instead of replaying its answer from before): once per reset, whichever gateways run.
Every replica of every service watches the key; on a new epoch it swaps its test partition for
an empty one named after the epoch (`test_e3`: its own SQLite files or PostgreSQL tables, and
read-model file), then deletes the old one's, and runs the service's own `on_sandbox_reset` (the
deployments service stops its test-mode apps, the metrics service drops its test partitions, the
audit service clears its test-mode rows). A process that starts later opens the current epoch's
partition directly. Test-mode writes that race the reset may be lost with the rest, and one
answered from the old partition after the purge keeps its idempotency record: it is the sandbox.

`STRATUS_SANDBOX_RESET_INTERVAL` (seconds; unset or 0: never) makes the holder of the lease
`sandbox-timer` raise the epoch that long after the last reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

import msgspec
import nats
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from stratus_bus import Bus, kv_create
from stratus_contracts import subjects

if TYPE_CHECKING:
    from stratus_kit.service import Local

log = logging.getLogger("stratus.kit.sandbox")

BUCKET = "stratus_sandbox"
KEY = "epoch"
MODE = "test"


class Epoch(msgspec.Struct, frozen=True):
    epoch: int
    at: float  # unix time of the reset


def interval() -> float:
    return float(os.environ.get("STRATUS_SANDBOX_RESET_INTERVAL") or "0")


def store_name(partition: str, epoch: int) -> str:
    """The test partition's store at `epoch` (epoch 0 keeps the plain name of older stacks)."""
    return f"{partition}_e{epoch}" if partition == MODE and epoch > 0 else partition


async def bucket(bus: Bus) -> KeyValue:
    return await bus.key_value(KeyValueConfig(bucket=BUCKET, history=1))


async def current(kv: KeyValue) -> tuple[Epoch, int]:
    """The epoch and its KV revision (0 when no reset ever happened)."""
    try:
        entry = await kv.get(KEY)
    except KeyNotFoundError:
        return Epoch(0, 0.0), 0
    return msgspec.json.decode(entry.value or b"", type=Epoch), entry.revision or 0


async def reset(bus: Bus) -> int:
    """Raise the epoch (every service then drops its test data), purge the test-mode events from
    the stream and the gateway's test-mode idempotency records; the new epoch."""
    kv = await bucket(bus)
    while True:
        now, revision = await current(kv)
        after = Epoch(now.epoch + 1, time.time())
        try:
            if revision:
                await kv.update(KEY, msgspec.json.encode(after), last=revision)
            else:
                await kv_create(kv, KEY, msgspec.json.encode(after))
            break
        except KeyWrongLastSequenceError:
            await asyncio.sleep(0.01)  # another reset got there first: raise from its epoch
            continue
    with contextlib.suppress(Exception):  # no stream yet: nothing to purge
        await bus.js.purge_stream(subjects.EVENTS_STREAM, subject=f"evt.{MODE}.>")
    await _forget_answers(bus)
    log.info("sandbox reset", extra={"epoch": after.epoch})
    return after.epoch


async def _forget_answers(bus: Bus) -> None:
    """Purge the gateway's test-mode idempotency records (KV keys `test.<sha256>`; live ones are
    other subjects and stay). A request in flight whose record goes answers without storing."""
    stream, records = subjects.IDEMPOTENCY_STREAM, subjects.idempotency_records(MODE)
    try:
        await bus.settled(lambda: bus.js.purge_stream(stream, subject=records))
    except NotFoundError:
        pass  # no gateway has opened the bucket yet: no records
    except nats.errors.Error as exc:
        log.warning("sandbox reset left the test-mode idempotency records: %s", type(exc).__name__)


async def follow(local: Local, kv: KeyValue) -> None:
    """Watch the epoch; on each new one, reset this process's test-mode data."""
    watcher = await kv.watch(KEY, include_history=False)
    try:
        while True:
            try:
                entry = await watcher.updates(timeout=5.0)
            except TimeoutError:
                continue
            if entry is None or not entry.value:
                continue  # the end of the initial values, or a delete
            epoch = msgspec.json.decode(entry.value, type=Epoch).epoch
            if epoch > local.epoch:
                await local.reset_sandbox(epoch)
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()


async def timer(bus: Bus, kv: KeyValue) -> None:
    """Reset every `interval()` seconds after the last reset (run by the `sandbox-timer` lease's
    holder alone)."""
    every = interval()
    while True:
        now, _ = await current(kv)
        due = (now.at or time.time()) + every
        if now.at == 0.0:
            # Never reset: count from the first time a timer looked, kept as epoch 0's time.
            with contextlib.suppress(KeyWrongLastSequenceError):
                await kv_create(kv, KEY, msgspec.json.encode(Epoch(0, time.time())))
            await asyncio.sleep(0.01)  # until the winner's write is readable
            continue
        wait = due - time.time()
        if wait > 0:
            await asyncio.sleep(min(wait, 60.0))
            continue
        await reset(bus)
