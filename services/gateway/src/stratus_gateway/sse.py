"""Server-sent event streams that follow a service's durable data: the one loop behind the live
deployment logs and the live event feed.

A stream subscribes to the service's "something new" signal (a core NATS subject that carries
nothing) before it reads, then reads pages through the service (so every message passes its
tenant checks) until there is nothing more, and waits for the next signal. Clearing the signal
before each read means one that arrives during a read makes the stream read again: nothing
stored is missed. An idle stream sends a comment every `KEEPALIVE` seconds so proxies keep it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from stratus_bus import Bus

KEEPALIVE = 15.0
RETRY = b"retry: 1000\n\n"  # how soon a client that lost the stream reconnects, in ms
# (the messages of a page, whether more are there to read now, whether the stream has ended)
Page = tuple[bytes, bool, bool]


async def follow(bus: Bus, signal: str, read: Callable[[], Awaitable[Page]]) -> AsyncIterator[bytes]:
    news = asyncio.Event()

    async def heard(_: Any) -> None:
        news.set()

    sub = await bus.nc.subscribe(signal, cb=heard)
    try:
        yield RETRY
        while True:
            news.clear()  # before reading: a signal during the read means read again
            chunk, more, ended = await read()
            if chunk:
                yield chunk
            if ended:
                return
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE):
                    await news.wait()
                    continue
            yield b": keep-alive\n\n"
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
