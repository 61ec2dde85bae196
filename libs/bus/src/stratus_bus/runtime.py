"""The shape every service process shares: connect, register endpoints, wait for SIGTERM, drain.

A service module provides `async def setup(bus, stack) -> None` that adds its endpoints and
background tasks; `run(name, setup)` does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import Awaitable, Callable

from stratus_bus.bus import Bus
from stratus_bus.config import nats_url
from stratus_contracts import subjects
from stratus_contracts.reply import Ping, Pong
from stratus_telemetry import configure

log = logging.getLogger("stratus.runtime")

Setup = Callable[[Bus, contextlib.AsyncExitStack], Awaitable[None]]


async def serve_forever(name: str, setup: Setup, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    instance = f"{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    bus = await Bus.connect(nats_url(), name=instance)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(bus.drain)
        await bus.ensure_events_stream()
        await setup(bus, stack)

        async def ping(_: Ping) -> Pong:
            return Pong(service=name, instance=instance)

        await bus.serve(subjects.ping(name), Ping, ping, queue=subjects.queue_group(name))
        log.info("service ready", extra={"instance": instance})
        await stop.wait()
        log.info("service stopping: draining subscriptions")
        # In-flight requests finish before the stack closes the stores under them.
        await bus.drain()


def run(name: str, setup: Setup) -> None:
    configure(name)
    asyncio.run(serve_forever(name, setup))


def spawn(stack: contextlib.AsyncExitStack, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
    """Run a background task for the life of the service; it is cancelled on shutdown."""
    task = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]

    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(cancel)
    return task
