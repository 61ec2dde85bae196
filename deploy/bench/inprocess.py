"""In-process cost of one request: the gateway's `GET /v1/me` against the bare baseline app.

`make bench` measures throughput over real sockets, where a change of a microsecond is lost in
the machine's noise. This drives both ASGI apps directly from one event loop (no sockets, no
HTTP server), so it shows what a change to the gateway's request path costs, to a tenth of a
microsecond, in a few seconds:

    uv run python deploy/bench/inprocess.py              # medians of 7 batches, µs per request
    uv run python deploy/bench/inprocess.py --profile    # plus a cProfile of the gateway's path
    uv run python deploy/bench/inprocess.py --pairs      # what the access log and the limiter add

`--pairs` runs 16 requests at a time on the loop (as wrk's 16 connections do) and alternates
batches of the two sides of a pair on the same app, so that drift cancels: `INFO` against
`WARNING` (the access log, written by the log writer to a temporary file) and a `pro`-plan key
against the `internal` one (the rate limiter). It prints the median of the paired differences of
CPU per request, of the event loop's thread and of the whole process (the log writer's thread).

It starts a throw-away stack (`stratus up`, for identity and the bus) and builds the gateway app
in this process on the stack's NATS, with the bootstrap admin key (its principal is cached after
the first request, as in steady state). Figures here are lower than over sockets: a real gateway
also pays its HTTP server's parsing and writing, and runs the same code with colder caches, so a
microsecond saved here has been worth about two in `make bench`. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import resource
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
from stratus_telemetry import configure, configure_logging
from stratus_testing import Stack

BATCHES = 7
CONCURRENT = 16  # requests in flight in --pairs, as wrk's connections in `make bench`
PAIR_BATCH = 1_600  # requests per batch in --pairs
# --pairs: the `pro` plan's real capacity (the same lease of 50), refilled so fast it never runs dry.
PRO_PLAN = {"pro": {"limit": 60_000_000, "period": 60, "burst": 10_000}}


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


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def concurrent_us(app: Any, headers: list[tuple[bytes, bytes]], n: int) -> tuple[float, float]:
    """CPU µs per request of the loop's thread and of the process, CONCURRENT at a time."""

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"GET /v1/me answered {message['status']}")

    async def worker() -> None:
        for _ in range(n // CONCURRENT):
            await app(http_scope("/v1/me", headers), receive, send)

    thread, process = time.thread_time(), _process_cpu()
    await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
    return (time.thread_time() - thread) / n * 1e6, (_process_cpu() - process) / n * 1e6


async def pairs(rounds: int) -> None:
    """The access log's and the rate limiter's cost per request, in paired batches."""
    os.environ["STRATUS_PLANS"] = json.dumps(PRO_PLAN)  # read when the gateway app starts
    with tempfile.TemporaryDirectory(prefix="stratus-inprocess-") as tmp:
        log_file = (Path(tmp) / "gateway.log").open("w")
        configure_logging("gateway", stream=log_file)
        stack = Stack(Path(tmp) / "data", env={"STRATUS_PLANS": json.dumps(PRO_PLAN)}).start()
        bus = None
        try:
            made = stack.cli("accounts", "create", "inprocess-pro", "--plan", "pro", "--json")
            if made.returncode != 0:
                raise RuntimeError(f"stratus accounts create failed: {made.stderr}")
            bus = await Bus.connect(stack.nats_url, name="bench-inprocess")
            gateway = asgi(bus)
            await lifespan_started(gateway)
            keys = {"internal": stack.live_key, "pro": json.loads(made.stdout)["keys"]["live"]}
            headers = {
                k: [(b"host", b"bench"), (b"authorization", f"Bearer {v}".encode())] for k, v in keys.items()
            }
            root = logging.getLogger()
            sides = {  # name: (key, root level)
                "WARNING": ("internal", logging.WARNING),
                "INFO": ("internal", logging.INFO),
                "pro key": ("pro", logging.WARNING),
            }
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
            for key, level in sides.values():  # warm-up: caches, leases, the writer thread
                root.setLevel(level)
                await concurrent_us(gateway, headers[key], 2_000)
            for _ in range(rounds):
                for name, (key, level) in sides.items():
                    root.setLevel(level)
                    results[name].append(await concurrent_us(gateway, headers[key], PAIR_BATCH))
            root.setLevel(logging.WARNING)
            base = statistics.median(r[0] for r in results["WARNING"])
            print(f"GET /v1/me, internal key, WARNING: {base:.1f} µs CPU per request (loop thread)")
            for name, label in (("INFO", "INFO (access log)"), ("pro key", "pro key (rate limiter)")):
                for index, what in ((0, "loop thread"), (1, "process")):
                    added = statistics.median(
                        b[index] - a[index] for a, b in zip(results["WARNING"], results[name], strict=True)
                    )
                    print(f"  {label:<24} {what:<12} {added:+6.2f} µs per request (median of {rounds} pairs)")
        finally:
            if bus is not None:
                await bus.drain()
            stack.stop()
            logging.getLogger().handlers[0].flush()
            log_file.close()


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
    parser.add_argument(
        "--pairs", action="store_true", help="the access log's and the limiter's cost instead"
    )
    parser.add_argument("--rounds", type=int, default=40, help="pairs of batches with --pairs (default 40)")
    args = parser.parse_args()
    uvloop.run(pairs(args.rounds) if args.pairs else main(args.n, args.profile))
