"""`make bench`'s metrics figures, each next to a baseline from the same run.

* **Ingest**: `rows` request records published to `tel.requests` in messages of 1,000 (as the
  gateway batches them), until the metrics service's own count query sees them all; rows ÷ the
  time from the first publish. Baseline: the same rows inserted straight into a fresh chDB with
  the store's insert (a child process: chDB is one engine per process).
* **30-day hourly latency query over 10 M rows**: `load` (run before the stack starts, in a child
  process, into the stack's `metrics-chdb`) bulk-inserts `LOAD_ROWS` synthetic rows spread over
  30 days for one account; the bench then times `qry.metrics.request_series` (latency view,
  range 30d, step 1h) over the bus — the service's whole query path — median of `repeat`.
* **Resident memory** of the metrics service (VmRSS from /proc) after both.

The with/without comparison of `GET /v1/me` (STRATUS_TELEMETRY=0) is a pair in run.py.
Nothing asserts a timing.

Also runnable alone: `python deploy/bench/metrics.py load <chdb dir> <rows>` and
`python deploy/bench/metrics.py baseline <rows>`.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from stratus_bus import Bus
from stratus_contracts import metrics as c
from stratus_contracts.auth import Caller
from stratus_testing import wait_for

LOAD_ACCOUNT = "acct_benchmetricsaaaaaaaaaaaaa"
LOAD_ROWS = 10_000_000
HERE = Path(__file__).resolve()


def records(account: str, n: int) -> list[c.RequestRecord]:
    now = int(datetime.now(UTC).timestamp() * 1000)
    return [
        c.RequestRecord(
            ts=now - i,
            account=account,
            mode="live",
            route=("/v1/me", "/v1/projects", "/v1/projects/{project_id}")[i % 3],
            method="GET",
            status=200 if i % 50 else 500,
            latency_ms=float(i % 997) / 10,
            request_id=f"req_{i:024x}",
            key_id="key_bench",
        )
        for i in range(n)
    ]


def load(directory: str, rows: int) -> None:
    """Bulk-insert synthetic rows, generated inside ClickHouse (numbers()), spread over 30 days."""
    from stratus_metrics.store import MetricsStore

    store = MetricsStore(f"chdb://{directory}")
    store.migrate()
    span_ms = 30 * 86400 * 1000 - 60_000
    store.client.command(
        "INSERT INTO requests SELECT "
        "fromUnixTimestamp64Milli(toInt64({now:Int64} - number * {span:Int64} / {rows:Int64}), 'UTC'), "
        "{account:String}, 'live', '', '', "
        "arrayElement(['/v1/me', '/v1/projects', '/v1/projects/{project_id}'], number % 3 + 1), 'GET', "
        "if(number % 50 = 0, 500, 200), (number % 997) / 10, 'key_bench', concat('req_', toString(number)) "
        "FROM numbers({rows:UInt64})",
        parameters={
            "now": int(datetime.now(UTC).timestamp() * 1000),
            "span": span_ms,
            "rows": rows,
            "account": LOAD_ACCOUNT,
        },
    )
    store.client.command("OPTIMIZE TABLE requests FINAL")  # as parts would be merged by then
    store.close()


def baseline(rows: int) -> float:
    """Rows a second of the store's own insert into a fresh chDB, in batches of 10,000."""
    from stratus_metrics.store import MetricsStore

    with tempfile.TemporaryDirectory() as tmp:
        store = MetricsStore(f"chdb://{tmp}")
        store.migrate()
        data = records("acct_baseline", rows)
        start = time.perf_counter()
        for i in range(0, rows, 10_000):
            store.insert_requests(data[i : i + 10_000], [])
        took = time.perf_counter() - start
        store.close()
    return rows / took


def _child(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(HERE), *args], capture_output=True, text=True, timeout=900, check=True
    )
    return done.stdout.strip()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _count(bus: Bus, account: str) -> int:
    caller = Caller(account_id=account, mode="live", key_id="key_bench")
    # A day in hours: the rows span minutes (a 15-minute window aligned to the epoch may start
    # after the oldest of them), and the account is the bench's own.
    q = c.RequestSeries(caller=caller, view="requests", window=c.Window(range=86400, step=3600))
    result = await bus.call(q, timeout=30)
    return int(sum(v or 0 for s in result.series for _, v in s.points))


async def _ready(bus: Bus, account: str, rows: int) -> bool:
    return await _count(bus, account) >= rows


async def _measure(nats_url: str, rows: int, repeat: int) -> dict[str, Any]:
    bus = await Bus.connect(nats_url, name="bench-metrics")
    try:
        caller = Caller(account_id=LOAD_ACCOUNT, mode="live", key_id="key_bench")
        q = c.RequestSeries(caller=caller, view="latency", window=c.Window(range=30 * 86400, step=3600))
        times, points = [], 0
        for _ in range(repeat + 1):  # the first warms the caches, not reported
            start = time.perf_counter()
            result = await bus.call(q, timeout=60)
            times.append(time.perf_counter() - start)
            points = sum(len(s.points) for s in result.series)
        query_ms = statistics.median(times[1:]) * 1000
        account = f"acct_{uuid.uuid4().hex[:26]}"
        data = records(account, rows)
        encoder = msgspec.msgpack.Encoder()
        payloads = [encoder.encode(c.RequestBatch(records=data[i : i + 1000])) for i in range(0, rows, 1000)]
        start = time.perf_counter()
        for payload in payloads:
            await bus.publish_durably(c.REQUESTS_SUBJECT, payload, msg_id=uuid.uuid4().hex)
        published = time.perf_counter() - start
        await wait_for(lambda: _ready(bus, account, rows), timeout=600, interval=0.05)
        took = time.perf_counter() - start
        return {"query_ms": query_ms, "query_points": points, "ingest_s": took, "publish_s": published}
    finally:
        await bus.drain()


def measure(nats_url: str, metrics_pid: int, *, rows: int = 500_000, repeat: int = 5) -> dict[str, Any]:
    figures = asyncio.run(_measure(nats_url, rows, repeat))
    direct = float(_child("baseline", str(rows)))
    return {
        "rows": rows,
        "ingest_rows_per_s": rows / figures["ingest_s"],
        "publish_rows_per_s": rows / figures["publish_s"],
        "direct_insert_rows_per_s": direct,
        "query_30d_hourly_latency_ms": figures["query_ms"],
        "query_rows": LOAD_ROWS,
        "query_points": figures["query_points"],
        "metrics_rss_mb": rss_mb(metrics_pid),
    }


def report(figures: dict[str, Any]) -> None:
    ratio = figures["ingest_rows_per_s"] / figures["direct_insert_rows_per_s"]
    print(
        f"\nmetrics ({figures['rows']:,} request rows through TELEMETRY; "
        f"{figures['query_rows']:,} rows loaded):\n"
        f"  ingested into ClickHouse      {figures['ingest_rows_per_s']:>10,.0f} rows/s"
        f"   direct insert {figures['direct_insert_rows_per_s']:>10,.0f} rows/s   ratio {ratio:.3f}x"
        f"   (target ≥ 100,000/s)\n"
        f"  30-day hourly latency query   {figures['query_30d_hourly_latency_ms']:>10.1f} ms"
        f"   ({figures['query_points']} points; target ≤ 200 ms)\n"
        f"  metrics service RSS           {figures['metrics_rss_mb']:>10.0f} MB"
    )


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "baseline":
        print(baseline(int(sys.argv[2])))
