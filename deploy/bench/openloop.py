"""An open-loop load generator: requests at a fixed rate, latency measured from when each was due.

wrk is closed-loop: it sends the next request when an answer arrives, so its percentiles report
queueing at saturation and hide the latency a client sees at a given load (coordinated
omission). This sends `rate` requests a second on a schedule, on as many keep-alive connections
as it needs (up to `connections`), and times each from its scheduled moment to the end of its
answer: a request that had to wait for a free connection counts that wait.

    uv run python deploy/bench/openloop.py URL --rate 500 --seconds 10 --key sk_… --post-projects TAG

`--post-projects TAG` sends `POST` bodies with a fresh project name and a fresh Idempotency-Key
each (like `post_projects.lua`); without it, `GET URL`. It prints one JSON line: offered and
achieved rate, p50/p90/p99/max in ms, statuses. `make bench` uses it for the write target's
latency at a fixed offered load. Plain asyncio streams and a minimal HTTP/1.1 client keep its
own cost low (it shares the machine with what it measures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from urllib.parse import urlsplit


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


async def run(url: str, rate: float, seconds: float, key: str, tag: str | None, connections: int) -> dict:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    prefix = os.urandom(4).hex()

    def request(n: int) -> bytes:
        head = (
            f"{'POST' if tag else 'GET'} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        )
        if tag is None:
            return (head + "\r\n").encode()
        body = json.dumps({"name": f"o{tag}-{n}"}).encode()
        head += (
            f"Idempotency-Key: {prefix}-{tag}-{n}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def connection() -> Connection:
        nonlocal opened
        if idle.empty() and opened < connections:
            opened += 1
            return Connection(*await asyncio.open_connection(host, port))
        return await idle.get()

    async def one(n: int, due: float) -> None:
        conn = await connection()
        try:
            status = await conn.exchange(request(n))
        except (OSError, asyncio.IncompleteReadError):
            statuses[0] = statuses.get(0, 0) + 1
            return
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        idle.put_nowait(conn)

    tasks = []
    start = time.perf_counter() + 0.05
    total = int(rate * seconds)
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # the schedule itself: when the next request is due
        tasks.append(asyncio.ensure_future(one(n, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 3) if latencies else 0.0
        )

    return {
        "offered_rps": rate,
        "achieved_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else 0.0,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3) if latencies else 0.0,
        "connections": opened,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second offered")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--key", required=True, help="the API key (Authorization: Bearer)")
    parser.add_argument("--post-projects", metavar="TAG", help="POST a new project per request")
    parser.add_argument("--connections", type=int, default=64, help="at most this many connections")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(args.url, args.rate, args.seconds, args.key, args.post_projects, args.connections)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
