"""`make bench`'s webhook figures: time from a committed write to the first delivery attempt, and
signed deliveries a second to a local receiver, each next to a baseline from the same run.

* **Commit → first attempt**: `POST /v1/projects` (its 201 means the events are committed), then
  the time until a receiver in this process gets the signed `project.created` delivery; `n`
  creates one after another, p50 and p99. Baseline: the same receiver's round trip for a POST
  sent straight to it.
* **Deliveries a second**: `ENDPOINTS` endpoints that want every `project.created`, then `burst`
  creates as fast as 16 connections send them; deliveries received ÷ the time from the first to
  the last. Baseline: the receiver's own rate for the same number of POSTs sent straight to it
  over `ENDPOINTS` connections.

Nothing asserts a timing.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

ENDPOINTS = 8


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                now = time.perf_counter()
                key = self.headers.get("x-bench") or _name(body)
                with receiver.lock:
                    receiver.arrivals.setdefault(key, []).append(now)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, key: str, count: int, timeout: float) -> list[float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.arrivals.get(key, ()))
            if len(got) >= count:
                return got
            time.sleep(0.001)
        raise RuntimeError(f"only {len(got)} of {count} deliveries of {key} arrived")


def _name(body: bytes) -> str:
    import json

    try:
        return json.loads(body)["data"]["name"]
    except (ValueError, KeyError, TypeError):
        return ""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    base_url: str, key: str, n: int = 50, burst: int = 200, cpu: Callable[[], dict[str, float]] | None = None
) -> dict[str, Any]:
    """`cpu`, when given, reads each process's CPU seconds (the bench's /proc reading): the burst's
    CPU per delivery, by process, is then reported too."""
    receiver = Receiver()
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30, trust_env=False) as client:
            hooks = []
            for i in range(ENDPOINTS):
                made = client.post(
                    "/v1/webhooks", json={"url": f"{receiver.url}/{i}", "events": ["project.created"]}
                )
                made.raise_for_status()
                hooks.append(made.json()["data"]["id"])
            tag = uuid.uuid4().hex[:6]
            latency, direct = [], []
            with httpx.Client(timeout=10, trust_env=False) as plain:
                for i in range(n):
                    name = f"hook-{tag}-{i}"
                    client.post("/v1/projects", json={"name": name}).raise_for_status()
                    committed = time.perf_counter()
                    latency.append(receiver.wait(name, 1, 30)[0] - committed)
                    probe = f"probe-{tag}-{i}"
                    sent = time.perf_counter()
                    plain.post(f"{receiver.url}/probe", content=b"{}", headers={"x-bench": probe})
                    direct.append(receiver.wait(probe, 1, 10)[0] - sent)
                # Throughput: a burst of creates, each delivered to every endpoint.
                names = [f"burst-{tag}-{i}" for i in range(burst)]
                before = cpu() if cpu else {}
                with concurrent.futures.ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda name: client.post("/v1/projects", json={"name": name}), names))
                arrivals = [receiver.wait(name, ENDPOINTS, 120) for name in names]
                stamps = sorted(t for got in arrivals for t in got[:ENDPOINTS])
                rate = len(stamps) / max(stamps[-1] - stamps[0], 1e-9)
                after = cpu() if cpu else {}
                per_delivery = {
                    name: round((after[name] - before[name]) * 1000 / len(stamps), 3)
                    for name in before
                    if name in after
                }
                # The receiver alone, over as many connections.
                total = burst * ENDPOINTS
                start = time.perf_counter()

                def post(i: int) -> None:
                    plain.post(f"{receiver.url}/raw", content=b"{}", headers={"x-bench": f"raw-{tag}"})

                with concurrent.futures.ThreadPoolExecutor(ENDPOINTS) as pool:
                    list(pool.map(post, range(total)))
                raw_rate = total / (time.perf_counter() - start)
            for hook in hooks:
                client.delete(f"/v1/webhooks/{hook}")
    finally:
        receiver.server.shutdown()
    return {
        "n": n,
        "burst": burst,
        "endpoints": ENDPOINTS,
        "first_attempt_ms": {"p50": _pct(latency, 0.5) * 1000, "p99": _pct(latency, 0.99) * 1000},
        "direct_ms": {"p50": _pct(direct, 0.5) * 1000, "p99": _pct(direct, 0.99) * 1000},
        "deliveries_per_s": rate,
        "receiver_alone_per_s": raw_rate,
        "median_first_attempt_ms": statistics.median(latency) * 1000,
        # CPU ms per delivery over the burst, by process (the creates' own cost included)
        "cpu_ms_per_delivery": per_delivery,
    }


def report(figures: dict[str, Any]) -> None:
    f, d = figures["first_attempt_ms"], figures["direct_ms"]
    print(
        f"\nwebhooks ({figures['n']} creates one by one; a burst of {figures['burst']} "
        f"to {figures['endpoints']} endpoints):\n"
        f"  commit to first delivery attempt   p50 {f['p50']:7.1f} ms  p99 {f['p99']:7.1f} ms"
        f"   direct POST to the receiver p50 {d['p50']:5.1f} ms  p99 {d['p99']:5.1f} ms\n"
        f"  signed deliveries a second         {figures['deliveries_per_s']:7.0f}"
        f"                  the receiver alone {figures['receiver_alone_per_s']:7.0f}/s"
        f"   ratio {figures['deliveries_per_s'] / figures['receiver_alone_per_s']:.3f}x"
    )
    if figures["cpu_ms_per_delivery"]:
        shown = "  ".join(f"{name} {ms:.3f}" for name, ms in sorted(figures["cpu_ms_per_delivery"].items()))
        print(f"  CPU ms per delivery in the burst (with its creates): {shown}")
