"""In-process cost of one request: the gateway's `GET /v1/me` against the bare baseline app.

`make bench` measures throughput over real sockets, where a change of a microsecond is lost in
the machine's noise. This drives both ASGI apps directly from one event loop (no sockets, no
uvicorn), so it shows what a change to the gateway's request path costs, to a tenth of a
microsecond, in a few seconds:

    uv run python deploy/bench/inprocess.py              # medians of 7 batches, µs per request
    uv run python deploy/bench/inprocess.py --profile    # plus a cProfile of the gateway's path

It starts a throw-away stack (`stratus up`, for identity and the bus) and builds the gateway app
in this process on the stack's NATS, with the bootstrap admin key (its principal is cached after
the first request, as in steady state). Figures here are lower than over sockets: a real server
also pays uvicorn's parsing and writing, and runs the same code with colder caches, so a
microsecond saved here has been worth about two in `make bench`. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import app as bare

from stratus_bus import Bus
from stratus_gateway.app import asgi
from stratus_telemetry import configure
from stratus_testing import Stack

BATCHES = 7


def http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def per_request_us(app: Any, path: str, headers: list[tuple[bytes, bytes]], n: int) -> float:
    """Median over BATCHES batches of the µs one request takes; fails unless it answers 200."""
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(500):  # warm-up: caches, the auth cache, first-call imports
        await app(http_scope(path, headers), receive, send)
    if statuses[-1] != 200:
        raise RuntimeError(f"GET {path} answered {statuses[-1]}")
    batches = []
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(n // BATCHES):
            await app(http_scope(path, headers), receive, send)
        batches.append((time.perf_counter() - started) / (n // BATCHES) * 1e6)
    return statistics.median(batches)


async def lifespan_started(app: Any) -> None:
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await events.put({"type": "lifespan.startup"})
    started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        if not started.done():
            started.set_result(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    asyncio.get_running_loop().create_task(app(scope, events.get, send))
    message = await started
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"gateway did not start: {message}")


async def main(n: int, profile: bool) -> None:
    configure("gateway")
    logging.getLogger().setLevel(logging.WARNING)  # one log line per request would be measured
    with tempfile.TemporaryDirectory(prefix="stratus-inprocess-") as tmp:
        stack = Stack(tmp).start()
        bus = None
        try:
            bus = await Bus.connect(stack.nats_url, name="bench-inprocess")
            gateway = asgi(bus)
            await lifespan_started(gateway)
            auth = [(b"host", b"bench"), (b"authorization", f"Bearer {stack.live_key}".encode())]
            base_us = await per_request_us(bare, "/", [(b"host", b"bench")], n)
            me_us = await per_request_us(gateway, "/v1/me", auth, n)
            print(f"baseline GET /     {base_us:6.1f} µs per request")
            print(f"gateway GET /v1/me {me_us:6.1f} µs per request ({me_us - base_us:+.1f} µs)")
            if profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await per_request_us(gateway, "/v1/me", auth, n // 3)
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        finally:
            if bus is not None:
                await bus.drain()
            stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=21_000, help="requests per app (default 21000)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of /v1/me")
    args = parser.parse_args()
    uvloop.run(main(args.n, args.profile))
