"""`make bench`: HTTP throughput and latency of the gateway's main routes against a bare Litestar app.

It starts a throw-away stack (`stratus up` in a temporary data dir), the baseline app
(`deploy/bench/baseline.py`) on each HTTP server the gateway can run on, and two more gateway
processes on the stack's bus, then drives each target with wrk (installed with apt-get when
missing and running as root):

    baseline (uvicorn)         GET /                 bare Litestar on uvicorn (the gateway's default),
                               with the gateway's options
    baseline (granian)         GET /                 the same on Granian
    GET /v1/me                 auth only, from the gateway's cache (`internal` plan: no limit);
                               the stack's gateway, on the default server, at WARNING
    GET /v1/me, granian        the same on a gateway served by Granian (STRATUS_HTTP_SERVER)
    GET /v1/me, INFO log       the same on a gateway at the default log level (INFO: one JSON
                               access line per request) writing to a file, as `make run` does
                               for an operator whose log collector reads it
    GET /v1/me, telemetry off  the same on a gateway with STRATUS_TELEMETRY=0 (no request records:
                               the pair with GET /v1/me is what recording costs)
    GET /v1/me, rate-limited   the same with a `pro`-plan key: a token per request from the
                               rate limiter, and the `X-RateLimit-*` headers
    GET /v1/projects/{id}      auth, then one NATS round trip to projects (`internal` plan:
                               no rate limit, the limiter is skipped)
    GET /v1/projects/{id}, granian   the same on the Granian gateway
    GET project, rate-limited  the same with a `pro`-plan key: the rate limiter spends a token
                               per request (leased in batches from JetStream KV)
    POST /v1/projects          auth, idempotency, then a create in projects (its events
                               committed, in a group commit with the creates beside it)

After each round the write target also runs open-loop (deploy/bench/openloop.py) at
BENCH_OPEN_RATE, and at that rate scaled by this round's uvicorn baseline against the machine
the targets were set on (REFERENCE_BASELINE), for its latency at a given load; and with
BENCH_POSTGRES_DSN set, a second stack on PostgreSQL runs the write target in rounds of its own,
each after a run of the baseline it is divided by.

Rounds are interleaved (every target once, in that order, then again) so that the machine's
noise hits every target alike. The figures quoted are medians over the rounds; "vs baseline" is
the median of each round's target req/s over the same round's req/s of the baseline on the same
HTTP server, the figure that travels between machines. Pairs that isolate one cost (the rate
limiter, the access log, the server) are reported the same way: the median of per-round ratios.
A second table gives the CPU time each process spent per request (read from /proc; a process's
figure includes every thread, Granian's I/O thread too), which says where the time goes. Results
are printed and written to `bench-results/latest.json`; the logs stay in the temporary dir,
which is kept (and named) only when the run fails.

Settings: `--quick` (1 round of 2 s, a smoke run), and the environment variables
BENCH_DURATION (seconds per run, default 5), BENCH_ROUNDS (default 5), BENCH_OPEN_RATE (the write
target's offered rate for its open-loop latency, default 500), BENCH_POSTGRES_DSN (also run the
write target on a stack whose event stores are in this PostgreSQL, in a schema of its own), BENCH_CONNECTIONS
(default 16) and BENCH_THREADS (wrk threads, default 2). Exits 1 when any run saw a non-2xx
response or a socket error, or a service restarted mid-run, after printing the results.

Nothing here asserts a timing: it measures and reports.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import deploys  # deploy/bench/deploys.py, beside this script
import hooks  # deploy/bench/hooks.py
import metrics  # deploy/bench/metrics.py

from stratus_contracts import keys
from stratus_gateway.__main__ import DEFAULT_SERVER, SERVERS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = ROOT / "bench-results" / "latest.json"
POST_SCRIPT = HERE / "post_projects.lua"

READY_TIMEOUT = 120.0  # a cold stack on a busy 2-core machine has been seen to need ~10 s
STOP_GRACE = 30.0  # `stratus up` gives each child 10 s, services first and the bus after
WRK_TIMEOUT = "10s"  # above the bus's 5 s request timeout, so slow answers count as latency
# The rate-limited target's plan: the real `pro` capacity (so the same lease size, 50 tokens per
# KV round trip), refilled fast enough that the benchmark never runs it dry.
BENCH_PRO_PLAN = {"limit": 60_000_000, "period": 60, "burst": 10_000}
RATE_LIMITED = "GET project, rate-limited"
ME = "GET /v1/me"
ME_LIMITED = "GET /v1/me, rate-limited"
ME_INFO = "GET /v1/me, INFO log"
ME_NOTEL = "GET /v1/me, telemetry off"
UNLIMITED = "GET /v1/projects/{id}"
OTHER_SERVER = next(name for name in SERVERS if name != DEFAULT_SERVER)
ME_OTHER = f"GET /v1/me, {OTHER_SERVER}"
GET_OTHER = f"GET /v1/projects/{{id}}, {OTHER_SERVER}"
ACCESS_LINE = b"stratus.gateway.access"  # the access log's logger name, in its lines only


def baseline_label(server: str) -> str:
    return f"baseline ({server})"


# Pairs of targets whose per-round ratio isolates one cost: (label, numerator, denominator).
PAIRS = [
    ("Granian's bare route against uvicorn's", baseline_label("granian"), baseline_label("uvicorn")),
    (f"GET /v1/me on {DEFAULT_SERVER} against {OTHER_SERVER}", ME, ME_OTHER),
    (f"GET /v1/projects/{{id}} on {DEFAULT_SERVER} against {OTHER_SERVER}", UNLIMITED, GET_OTHER),
    ("GET /v1/me at INFO (access log to a file) against WARNING", ME_INFO, ME),
    ("GET /v1/me with request telemetry against without (STRATUS_TELEMETRY=0)", ME, ME_NOTEL),
    ("GET /v1/me with a pro key (rate limiter on) against internal", ME_LIMITED, ME),
    ("GET /v1/projects/{id} with a pro key against internal", RATE_LIMITED, UNLIMITED),
]


# -- settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    duration: int
    rounds: int
    connections: int
    threads: int
    warmup: int


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"bench: {name}={raw!r} is not a whole number")
    if value < minimum:
        sys.exit(f"bench: {name} must be at least {minimum}, got {value}")
    return value


def settings_from(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="deploy/bench/run.py",
        description="Benchmark the gateway's routes against a bare Litestar app with wrk.",
    )
    parser.add_argument("--quick", action="store_true", help="one round of 2 s per target (smoke run)")
    args = parser.parse_args(argv)
    threads = _env_int("BENCH_THREADS", 2)
    # wrk refuses fewer connections than threads; say so here rather than in its words.
    connections = _env_int("BENCH_CONNECTIONS", 16)
    if connections < threads:
        sys.exit(f"bench: BENCH_CONNECTIONS ({connections}) must be >= BENCH_THREADS ({threads})")
    if args.quick:
        return Settings(duration=2, rounds=1, connections=connections, threads=threads, warmup=1)
    return Settings(
        duration=_env_int("BENCH_DURATION", 5),
        rounds=_env_int("BENCH_ROUNDS", 5),
        connections=connections,
        threads=threads,
        warmup=2,
    )


# -- wrk ----------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        print(
            "bench: wrk is not installed and this is not root, so it cannot be installed here.\n"
            "       Install it (Debian/Ubuntu: `sudo apt-get install wrk`) and run again.",
            file=sys.stderr,
        )
        sys.exit(1)
    print("bench: wrk not found; installing it with apt-get …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        sys.exit("bench: apt-get installed wrk but it is not on PATH")
    return found


def wrk_version(wrk: str) -> str:
    # `wrk -v` prints its usage too and exits non-zero; the version is the first line, before
    # the " [epoll] Copyright …" tail.
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" [", 1)[0] if first else "unknown"


_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_LATENCY_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)\s*$")
_RPS = re.compile(r"^Requests/sec:\s+(\d+(?:\.\d+)?)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in (\d+(?:\.\d+)?)(us|ms|s|m|h)", re.M)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.M)
_SOCKET = re.compile(r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)
    # CPU milliseconds that each process spent per request during the run (see cpu_sampler).
    cpu_ms_per_req: dict[str, float] = field(default_factory=dict)
    # Writes only: how many commands the projects service's writer committed per transaction.
    commands_per_commit: float | None = None

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_wrk(text: str) -> WrkResult:
    """Read req/s, the 50th/99th percentiles (from `--latency`) and the error counts."""
    percentiles: dict[str, float] = {}
    in_block = False
    for line in text.splitlines():
        if line.strip() == "Latency Distribution":
            in_block = True
            continue
        if in_block:
            m = _LATENCY_LINE.match(line)
            if not m:
                break
            percentiles[m.group(1)] = float(m.group(2)) * _UNITS_S[m.group(3)] * 1000.0
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    if rps is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise ValueError(f"unexpected wrk output:\n{text}")
    non_2xx = _NON_2XX.search(text)
    sock = _SOCKET.search(text)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {}
    )
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors={k: v for k, v in socket_errors.items() if v},
    )


# -- targets ------------------------------------------------------------------------------


@dataclass
class Target:
    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    script_args: list[str] | None = None  # set: drive with post_projects.lua
    server: str = DEFAULT_SERVER  # the HTTP server: its baseline is what "vs baseline" divides by
    # ... unless this names another target to divide by (a second run of a baseline, in rounds
    # of its own, as the PostgreSQL write target has).
    baseline: str | None = None
    # The process whose CPU is this target's "gateway" (or "baseline") column, when it is not the
    # stack's gateway: a key of the pid table.
    serving: dict[str, str] = field(default_factory=dict)
    runs: list[WrkResult] = field(default_factory=list)

    def wrk_argv(self, wrk: str, s: Settings, seconds: int, tag: str) -> list[str]:
        argv = [
            wrk,
            f"-t{s.threads}",
            f"-c{s.connections}",
            f"-d{seconds}s",
            "--timeout",
            WRK_TIMEOUT,
            "--latency",
        ]
        for name, value in self.headers.items():
            argv += ["-H", f"{name}: {value}"]
        if self.script_args is not None:
            argv += ["-s", str(POST_SCRIPT), self.url, "--", tag, *self.script_args]
        else:
            argv.append(self.url)
        return argv


def run_wrk(wrk: str, target: Target, s: Settings, seconds: int, tag: str) -> WrkResult:
    out = subprocess.run(
        target.wrk_argv(wrk, s, seconds, tag),
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed on {target.label} ({out.returncode}):\n{out.stderr}{out.stdout}")
    return parse_wrk(out.stdout)


# -- processes ----------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def _die_with_us() -> None:
    # If this script is killed outright, the stack and the baseline must not outlive it holding
    # ports; `stratus up` passes the same request on to its own children.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of one process, from /proc (None when it is gone or not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the ")" that closes the command name; utime and stime are the 12th and 13th.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    snap = {name: cpu_seconds(pid) for name, pid in pids.items()}
    # wrk is our child and has been waited for, so its CPU time lands in RUSAGE_CHILDREN.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    snap["wrk"] = usage.ru_utime + usage.ru_stime
    return {name: value for name, value in snap.items() if value is not None}


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    if requests <= 0:
        return {}
    return {
        name: round((after[name] - before[name]) * 1000.0 / requests, 3) for name in before if name in after
    }


class Proc:
    """A child in its own session, so a Ctrl-C reaches only us and we stop it in order."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_us,
        )

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with code {code}; see {self.log_path}\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                print(f"bench: {self.name} ignored SIGTERM for {STOP_GRACE:g}s; killing it", file=sys.stderr)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()


def http_call(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, bytes]:
    # http.client rather than urllib: no proxy from the environment can sneak in between.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_http_ok(proc: Proc, port: int, path: str, deadline: float) -> None:
    last = "no answer"
    while True:
        proc.check_alive()
        try:
            status, body = http_call(port, "GET", path)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"{proc.name}: GET {path} did not answer 200 in time (last: {last}); "
                f"see {proc.log_path}\n{proc.tail()}"
            )
        time.sleep(0.1)


def stack_env(tmp: Path, port: int, admin_key: str) -> dict[str, str]:
    """The environment of the stack and of the extra gateways (which add their own on top)."""
    env = {
        **os.environ,
        "STRATUS_DATA_DIR": str(tmp / "data"),
        "STRATUS_PORT": str(port),
        "STRATUS_HOST": "127.0.0.1",
        "STRATUS_ADMIN_KEY": admin_key,
        # The stack runs at WARNING, so that every target but one measures the request path
        # without its access log; the "INFO log" target is a gateway at the default level
        # (docs/performance.md). WARNING keeps errors visible.
        "STRATUS_LOG_LEVEL": "WARNING",
        # The stack as it runs without a trace backend (trace ids propagate, spans are not
        # recorded): a developer's OTEL_* settings would otherwise change what is measured.
        "OTEL_TRACES_EXPORTER": "none",
        # The operator's own account (the admin key) is unlimited, as operators' benchmarks are.
        "STRATUS_BOOTSTRAP_PLAN": "internal",
        "STRATUS_PLANS": json.dumps({"pro": BENCH_PRO_PLAN}),
    }
    # An inherited NATS_URL would point the stack at someone else's bus.
    env.pop("NATS_URL", None)
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "STRATUS_HTTP_SERVER"):
        env.pop(name, None)
    return env


def start_stack(tmp: Path, env: dict[str, str]) -> Proc:
    return Proc("stratus up", [sys.executable, "-m", "stratus_cli.main", "up"], env, tmp / "stack.log")


def start_baseline(tmp: Path, port: int, server: str) -> Proc:
    return Proc(
        baseline_label(server),
        [sys.executable, str(HERE / "baseline.py"), str(port), server],
        dict(os.environ),
        tmp / f"baseline-{server}.log",
    )


def start_gateway(tmp: Path, name: str, port: int, env: dict[str, str], nats_url: str) -> Proc:
    """Another gateway replica on the stack's bus, as `stratus up` runs one (`env` as the stack's,
    with the caller's changes). Its stdout and stderr go to `<tmp>/<name>.log`, as an operator's
    service manager writes them to a file that a log collector reads."""
    env = {**env, "NATS_URL": nats_url, "STRATUS_PORT": str(port)}
    return Proc(name, [sys.executable, "-m", "stratus_gateway"], env, tmp / f"{name}.log")


def stack_pids(data_dir: Path, deadline: float) -> dict[str, int]:
    """Pids of the stack's processes, from the `stack.json` that `stratus up` writes once ready."""
    path = data_dir / "stack.json"
    while True:
        # The supervisor writes the file just after /readyz first answers 200: allow a moment.
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(path.read_text())
            pids = {name: int(pid) for name, pid in info["services"].items() if pid}
            if info.get("nats_pid"):
                pids["nats"] = int(info["nats_pid"])
            return pids
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{path} did not appear after the stack was ready")
        time.sleep(0.05)


def create_project(port: int, auth: dict[str, str]) -> str:
    status, body = http_call(
        port,
        "POST",
        "/v1/projects",
        {**auth, "Content-Type": "application/json"},
        json.dumps({"name": "bench-target"}).encode(),
    )
    if status != 201:
        raise RuntimeError(f"POST /v1/projects answered {status}: {body[:500]!r}")
    return str(json.loads(body)["data"]["id"])


def smoke(port: int, path: str, headers: dict[str, str], *, limited: bool = False) -> None:
    """One request before the load: a misconfigured target fails here, not as 100% errors (and
    the rate limiter is on exactly for the target that measures it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        status, body, budget = response.status, response.read(), response.getheader("X-RateLimit-Limit")
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"GET {path} on port {port} answered {status}: {body[:500]!r}")
    if path.startswith("/v1/") and limited != (budget is not None):
        raise RuntimeError(f"GET {path}: expected the rate limiter {'on' if limited else 'off'}")


def create_pro_account(tmp: Path) -> str:
    """A tenant on the `pro` plan (with `stratus accounts create`); its live key."""
    env = {**os.environ, "STRATUS_DATA_DIR": str(tmp / "data")}
    env.pop("NATS_URL", None)
    argv = [sys.executable, "-m", "stratus_cli.main", "accounts", "create", "bench-pro"]
    out = subprocess.run(
        [*argv, "--plan", "pro", "--json"], env=env, capture_output=True, text=True, check=False, timeout=60
    )
    if out.returncode != 0:
        raise RuntimeError(f"stratus accounts create failed ({out.returncode}): {out.stderr}")
    return str(json.loads(out.stdout)["keys"]["live"])


# -- report -------------------------------------------------------------------------------


def source_revision() -> str:
    """HEAD of the checkout, with "+dirty" when files differ: figures belong to a revision."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if status else head


def machine_facts(wrk: str) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": usable,
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk_version(wrk),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "revision": source_revision(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }


CPU_COLUMNS = ("gateway", "identity", "projects", "audit", "nats", "baseline", "wrk")


def _median_ratio(a: list[float], b: list[float]) -> float | None:
    """Median over the rounds of a's req/s over b's in the same round: both ran seconds apart,
    so noise that drifts over minutes mostly cancels, and the median drops the odd round."""
    ratios = [x / y for x, y in zip(a, b, strict=True) if y]
    return round(statistics.median(ratios), 4) if ratios else None


def _rps(runs: list[Any]) -> list[float]:
    return [r["rps"] if isinstance(r, dict) else r.rps for r in runs]


def summarize(targets: list[Target]) -> list[dict[str, Any]]:
    baselines = {t.server: t for t in targets if t.label == baseline_label(t.server)}
    by_label = {t.label: t for t in targets}
    rows = []
    for t in targets:
        base = by_label[t.baseline] if t.baseline else baselines.get(t.server)
        others = {t.server: base} if t.baseline and base else baselines
        cpu = {
            name: round(statistics.median(r.cpu_ms_per_req[t.serving.get(name, name)] for r in t.runs), 3)
            for name in CPU_COLUMNS
            if all(t.serving.get(name, name) in r.cpu_ms_per_req for r in t.runs)
        }
        rows.append(
            {
                "target": t.label,
                "server": t.server,
                "rps": round(statistics.median(r.rps for r in t.runs), 1),
                "p50_ms": round(statistics.median(r.p50_ms for r in t.runs), 3),
                "p99_ms": round(statistics.median(r.p99_ms for r in t.runs), 3),
                "vs_baseline": _median_ratio(_rps(t.runs), _rps(base.runs)) if base else None,
                "vs_baselines": {
                    name: _median_ratio(_rps(t.runs), _rps(b.runs)) for name, b in others.items()
                },
                "errors": sum(r.errors for r in t.runs),
                "requests": sum(r.requests for r in t.runs),
                "cpu_ms_per_req": cpu,
                "rounds": [asdict(r) for r in t.runs],
            }
        )
    return rows


def pair_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each of PAIRS: the median of the per-round req/s ratios and both sides' gateway CPU per
    request (the baseline's, for the pair of baselines)."""
    by_label = {row["target"]: row for row in rows}
    out = []
    for what, top, bottom in PAIRS:
        if top not in by_label or bottom not in by_label:
            continue
        a, b = by_label[top], by_label[bottom]
        column = "baseline" if top.startswith("baseline") else "gateway"
        out.append(
            {
                "what": what,
                "target": top,
                "against": bottom,
                "ratio": _median_ratio(_rps(a["rounds"]), _rps(b["rounds"])),
                "cpu_ms_per_req": {
                    "target": a["cpu_ms_per_req"].get(column),
                    "against": b["cpu_ms_per_req"].get(column),
                },
            }
        )
    return out


def print_pairs(pairs: list[dict[str, Any]]) -> None:
    if not pairs:
        return
    print()
    print("pairs (median of per-round req/s ratios; CPU ms per request of the serving process):")
    for pair in pairs:
        cpu = pair["cpu_ms_per_req"]
        print(f"  {pair['what']:<62}{pair['ratio']:>7.3f}x   CPU {cpu['against']} -> {cpu['target']}")


def _ratio_cell(ratio: float | None) -> str:
    return f"{ratio:>12.3f}x" if ratio is not None else f"{'-':>13}"


def print_report(rows: list[dict[str, Any]], facts: dict[str, Any], s: Settings) -> None:
    print()
    print(
        f"medians of {s.rounds} interleaved round(s); wrk -t{s.threads} -c{s.connections} "
        f"-d{s.duration}s --latency"
    )
    others = [name for name in SERVERS if name != DEFAULT_SERVER]
    print(
        f"{'target':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs baseline':>13}"
        + "".join(f"{'vs ' + name:>13}" for name in others)
        + f"{'errors':>8}"
    )
    for row in rows:
        flag = "  <-- ERRORS" if row["errors"] else ""
        cross = "".join(_ratio_cell(row["vs_baselines"].get(name)) for name in others)
        print(
            f"{row['target']:<26}{row['rps']:>10.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{_ratio_cell(row['vs_baseline'])}{cross}{row['errors']:>8}{flag}"
        )
    print(f"(vs baseline: the bare route on the target's own server; vs {', '.join(others)}: on that one)")
    if s.rounds > 1:
        print()
        print("req/s per round (the spread is the machine's noise):")
        for row in rows:
            per = "".join(f"{r['rps']:>8.0f}" for r in row["rounds"])
            print(f"  {row['target']:<24}{per}")
    if any(row["cpu_ms_per_req"] for row in rows):
        print()
        print("CPU ms per request, by process (all of them share the machine's cores with wrk):")
        print(f"  {'target':<24}" + "".join(f"{name:>10}" for name in CPU_COLUMNS))
        for row in rows:
            cpu = row["cpu_ms_per_req"]
            cells = "".join(f"{cpu[name]:>10.3f}" if name in cpu else f"{'-':>10}" for name in CPU_COLUMNS)
            print(f"  {row['target']:<24}{cells}")
    print()
    print(
        f"machine: {facts['nproc']} CPUs ({facts['cpu_model']}), Python {facts['python']}, "
        f"{facts['wrk']}, {facts['platform']}"
    )
    print(
        f"revision {facts['revision']}; date: {facts['date']}; "
        f"load average before {facts['loadavg_before']}, after {facts['loadavg_after']}"
    )


WRITE = "POST /v1/projects"
WRITE_PG = "POST /v1/projects, PostgreSQL"
OPEN_RATE = float(os.environ.get("BENCH_OPEN_RATE", "500"))
# The uvicorn baseline's req/s on the machine where the write targets were set (issue #9,
# docs/performance.md at f5b6fe8). The open-loop round also runs at OPEN_RATE scaled by this
# round's uvicorn baseline over it: the rate that is to this machine what OPEN_RATE was to that
# one, since a 2-core VM's speed differs by more than 2x between hosts.
REFERENCE_BASELINE = 25095.0


def writer_stats(nats_url: str) -> dict[str, int]:
    """The projects service's worker counters (batches, jobs, commits per partition), from its ping."""
    import asyncio

    from stratus_bus import Bus
    from stratus_contracts import subjects
    from stratus_contracts.reply import Ping, Pong

    async def ask() -> dict[str, int]:
        bus = await Bus.connect(nats_url, name="bench-stats")
        try:
            pong = await bus.call(Ping(), subject=subjects.ping("projects"), returns=Pong, timeout=5)
            return dict(pong.stats)
        finally:
            await bus.drain()

    return asyncio.run(ask())


def commands_per_commit(before: dict[str, int], after: dict[str, int]) -> float | None:
    jobs = after.get("live.write_jobs", 0) - before.get("live.write_jobs", 0)
    commits = after.get("live.commits", 0) - before.get("live.commits", 0)
    return round(jobs / commits, 2) if commits else None


def open_loop(url: str, key: str, rate: float, seconds: int, tag: str) -> dict[str, Any]:
    """Creates at a fixed offered rate (deploy/bench/openloop.py), latency from when each was due."""
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "openloop.py"),
            url,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--key",
            key,
            "--post-projects",
            tag,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"openloop.py failed ({out.returncode}): {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def postgres_env(dsn: str) -> dict[str, str]:
    """The stack's event stores in a fresh schema of this PostgreSQL (the library's variables)."""
    from urllib.parse import urlparse

    import psycopg

    url = urlparse(dsn)
    schema = f"stratus_bench_{os.urandom(4).hex()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_SCHEMA": schema,
    }


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with contextlib.suppress(Exception), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def postgres_rounds(
    s: Settings, wrk: str, tmp: Path, dsn: str, baseline: Target, admin_key: str
) -> tuple[Target, Target, str | None]:
    """The write target against a second stack whose event stores are in PostgreSQL, in rounds
    interleaved with the default server's bare baseline (a second run of it, for the ratio)."""
    pg_tmp = tmp / "postgres"
    pg_tmp.mkdir()
    port = free_port()
    env = {**stack_env(pg_tmp, port, admin_key), **postgres_env(dsn)}
    stack = start_stack(pg_tmp, env)
    label = f"{baseline.label}, with PostgreSQL"
    base = Target(label, baseline.url, server=baseline.server, baseline=label)
    target = Target(WRITE_PG, f"http://127.0.0.1:{port}/v1/projects", script_args=[admin_key], baseline=label)
    try:
        wait_http_ok(stack, port, "/readyz", time.monotonic() + READY_TIMEOUT)
        pids = stack_pids(pg_tmp / "data", time.monotonic() + READY_TIMEOUT)
        nats_url = json.loads((pg_tmp / "data" / "stack.json").read_text())["nats_url"]
        run_wrk(wrk, target, s, s.warmup, "pgw")
        for n in range(1, s.rounds + 1):
            base.runs.append(run_wrk(wrk, base, s, s.duration, f"pgb{n}"))
            before, stats = cpu_snapshot(pids), writer_stats(nats_url)
            result = run_wrk(wrk, target, s, s.duration, f"pg{n}")
            result.cpu_ms_per_req = cpu_per_request(before, cpu_snapshot(pids), result.requests)
            result.commands_per_commit = commands_per_commit(stats, writer_stats(nats_url))
            target.runs.append(result)
            print(f"  {WRITE_PG:<26}{result.rps:>10.0f} req/s  p99 {result.p99_ms:7.2f} ms", flush=True)
    finally:
        stack.stop()
        drop_schema(dsn, env["POSTGRES_SCHEMA"])
    return base, target, env["POSTGRES_SCHEMA"]


def bench(s: Settings, wrk: str, tmp: Path) -> int:
    facts = machine_facts(wrk)
    admin_key = keys.generate("live")
    auth = {"Authorization": f"Bearer {admin_key}"}
    gw_port, other_port, info_port, notel_port = free_port(), free_port(), free_port(), free_port()
    base_ports = {server: free_port() for server in SERVERS}
    procs: list[Proc] = []
    warnings: list[str] = []
    info_gateway: Proc | None = None
    try:
        env = stack_env(tmp, gw_port, admin_key)
        # 10 M synthetic request rows in the stack's chDB before it starts (metrics.py).
        print(f"bench: loading {metrics.LOAD_ROWS:,} metrics rows", flush=True)
        (tmp / "data").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                str(HERE / "metrics.py"),
                "load",
                str(tmp / "data" / "metrics-chdb"),
                str(metrics.LOAD_ROWS),
            ],
            check=True,
            timeout=900,
        )
        stack = start_stack(tmp, env)
        procs.append(stack)
        baselines = {server: start_baseline(tmp, port, server) for server, port in base_ports.items()}
        procs.extend(baselines.values())
        deadline = time.monotonic() + READY_TIMEOUT
        for server, proc in baselines.items():
            wait_http_ok(proc, base_ports[server], "/", deadline)
        wait_http_ok(stack, gw_port, "/readyz", deadline)
        pids = stack_pids(tmp / "data", deadline)
        nats_url = json.loads((tmp / "data" / "stack.json").read_text())["nats_url"]
        # Two more replicas of the stack's gateway: one on the other HTTP server, one at the
        # default log level, as `make run` starts it (the stack itself runs at WARNING).
        other = start_gateway(
            tmp, f"gateway-{OTHER_SERVER}", other_port, {**env, "STRATUS_HTTP_SERVER": OTHER_SERVER}, nats_url
        )
        procs.append(other)
        info_gateway = start_gateway(
            tmp, "gateway-info", info_port, {**env, "STRATUS_LOG_LEVEL": "INFO"}, nats_url
        )
        procs.append(info_gateway)
        wait_http_ok(other, other_port, "/readyz", deadline)
        notel = start_gateway(tmp, "gateway-notel", notel_port, {**env, "STRATUS_TELEMETRY": "0"}, nats_url)
        procs.append(notel)
        wait_http_ok(info_gateway, info_port, "/readyz", deadline)
        wait_http_ok(notel, notel_port, "/readyz", deadline)
        pids[notel.name] = notel.popen.pid
        pids[other.name] = other.popen.pid
        pids[info_gateway.name] = info_gateway.popen.pid
        for proc in baselines.values():
            pids[proc.name] = proc.popen.pid
        print(f"bench: stack ready on :{gw_port}, baselines on {base_ports}", flush=True)

        project_id = create_project(gw_port, auth)
        pro_auth = {"Authorization": f"Bearer {create_pro_account(tmp)}"}
        pro_project_id = create_project(gw_port, pro_auth)
        for port in base_ports.values():
            smoke(port, "/", {})
        for port in (gw_port, other_port, info_port, notel_port):
            smoke(port, "/v1/me", auth)
        smoke(gw_port, "/v1/me", pro_auth, limited=True)
        smoke(gw_port, f"/v1/projects/{project_id}", auth)
        smoke(gw_port, f"/v1/projects/{pro_project_id}", pro_auth, limited=True)
        gw = f"http://127.0.0.1:{gw_port}"
        targets = [
            *(
                Target(
                    baseline_label(server),
                    f"http://127.0.0.1:{port}/",
                    server=server,
                    serving={"baseline": baseline_label(server)},
                )
                for server, port in base_ports.items()
            ),
            Target(ME, f"{gw}/v1/me", auth),
            Target(
                ME_OTHER,
                f"http://127.0.0.1:{other_port}/v1/me",
                auth,
                server=OTHER_SERVER,
                serving={"gateway": other.name},
            ),
            Target(
                ME_INFO, f"http://127.0.0.1:{info_port}/v1/me", auth, serving={"gateway": info_gateway.name}
            ),
            Target(ME_NOTEL, f"http://127.0.0.1:{notel_port}/v1/me", auth, serving={"gateway": notel.name}),
            Target(ME_LIMITED, f"{gw}/v1/me", pro_auth),
            Target(UNLIMITED, f"{gw}/v1/projects/{project_id}", auth),
            Target(
                GET_OTHER,
                f"http://127.0.0.1:{other_port}/v1/projects/{project_id}",
                auth,
                server=OTHER_SERVER,
                serving={"gateway": other.name},
            ),
            Target(RATE_LIMITED, f"{gw}/v1/projects/{pro_project_id}", pro_auth),
            Target(WRITE, f"{gw}/v1/projects", script_args=[admin_key]),
        ]
        opened: dict[str, list[dict[str, Any]]] = {}

        # Warm-up, not reported: first requests pay for imports, connection pools and caches.
        for t in targets:
            run_wrk(wrk, t, s, s.warmup, "w")
        for n in range(1, s.rounds + 1):
            print(f"bench: round {n}/{s.rounds}", flush=True)
            for t in targets:
                before = cpu_snapshot(pids)
                stats = writer_stats(nats_url) if t.label == WRITE else {}
                result = run_wrk(wrk, t, s, s.duration, str(n))
                result.cpu_ms_per_req = cpu_per_request(before, cpu_snapshot(pids), result.requests)
                if t.label == WRITE:
                    result.commands_per_commit = commands_per_commit(stats, writer_stats(nats_url))
                t.runs.append(result)
                mark = ""
                if result.errors:
                    mark = f"  ERRORS: non-2xx {result.non_2xx}, socket {result.socket_errors}"
                print(
                    f"  {t.label:<26}{result.rps:>10.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms{mark}",
                    flush=True,
                )
                for p in procs:
                    p.check_alive()
            # The write target's latency at a fixed offered load (wrk above measures saturation).
            uvicorn = next(t for t in targets if t.label == baseline_label("uvicorn")).runs[-1].rps
            rates = {"fixed": OPEN_RATE, "scaled": round(OPEN_RATE * uvicorn / REFERENCE_BASELINE)}
            for kind, rate in rates.items():
                last = open_loop(f"{gw}/v1/projects", admin_key, rate, s.duration, f"{kind[0]}{n}")
                opened.setdefault(kind, []).append(last)
                print(
                    f"  {WRITE + f' at {rate:.0f}/s offered':<26}{last['achieved_rps']:>10.0f} req/s  "
                    f"p50 {last['p50_ms']:7.2f} ms  p99 {last['p99_ms']:7.2f} ms",
                    flush=True,
                )
        print("bench: deployments of the tiny app", flush=True)
        deployed = deploys.measure(gw, admin_key, rounds=s.rounds, lines=100_000 if s.rounds > 1 else 20_000)
        print("bench: webhook deliveries", flush=True)
        hooked = hooks.measure(
            gw,
            admin_key,
            n=50 if s.rounds > 1 else 20,
            burst=200 if s.rounds > 1 else 50,
            cpu=lambda: cpu_snapshot(stack_pids(tmp / "data", deadline)),
        )
        print("bench: metrics ingest and queries", flush=True)
        measured = metrics.measure(
            nats_url,
            stack_pids(tmp / "data", deadline)["metrics"],
            rows=500_000 if s.rounds > 1 else 100_000,
            repeat=5 if s.rounds > 1 else 3,
        )
        postgres = os.environ.get("BENCH_POSTGRES_DSN", "").strip()
        if postgres:
            print("bench: the write target on PostgreSQL", flush=True)
            default_base = next(t for t in targets if t.label == baseline_label(DEFAULT_SERVER))
            pg_base, pg_write, _ = postgres_rounds(s, wrk, tmp, postgres, default_base, admin_key)
            targets += [pg_base, pg_write]
        # A service that crashed and was restarted by `stratus up` mid-run has a new pid; its
        # rounds measured a restart, not the route.
        now = stack_pids(tmp / "data", deadline)
        restarted = sorted(name for name, pid in now.items() if pids.get(name) != pid)
        if restarted:
            warnings.append(f"restarted during the run: {', '.join(restarted)} (see the stack log)")
    finally:
        # Baselines and extra gateways first: they hold nothing; the stack then stops services
        # before its bus.
        for p in reversed(procs):
            p.stop()

    facts["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    rows = summarize(targets)
    print_report(rows, facts, s)
    pairs = pair_ratios(rows)
    print_pairs(pairs)
    access = access_lines(info_gateway, targets)
    if access["lines"] < access["requests"]:
        warnings.append(
            f"the INFO gateway logged {access['lines']} access lines for {access['requests']} requests"
        )
    print(f"INFO gateway: {access['lines']} access lines logged for {access['requests']} requests answered")
    writes = write_summary(rows, opened)
    print_writes(writes)
    deploys.report(deployed)
    hooks.report(hooked)
    metrics.report(measured)
    if any(row["errors"] for row in rows):
        warnings.append("some runs had non-2xx responses or socket errors; their figures are suspect")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": facts,
                "settings": asdict(s),
                "warnings": warnings,
                "targets": rows,
                "pairs": pairs,
                "info_log": access,
                "writes": writes,
                "deployments": deployed,
                "webhooks": hooked,
                "metrics": measured,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results: {RESULTS.relative_to(ROOT)}")
    for warning in warnings:
        print(f"bench: WARNING: {warning}")
    return 1 if warnings else 0


def write_summary(rows: list[dict[str, Any]], opened: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The write target's figures: commands per commit (medians over rounds), and its latency at
    the fixed offered rate and at the scaled one (medians of the open-loop rounds)."""
    out: dict[str, Any] = {}
    for row in rows:
        if row["target"] in (WRITE, WRITE_PG):
            per_commit = [r["commands_per_commit"] for r in row["rounds"] if r.get("commands_per_commit")]
            out[row["target"]] = {
                "rps": row["rps"],
                "p99_ms": row["p99_ms"],
                "commands_per_commit": round(statistics.median(per_commit), 2) if per_commit else None,
            }
    for kind, runs in opened.items():
        out[f"open_loop_{kind}"] = {
            **{
                key: round(statistics.median(o[key] for o in runs), 3)
                for key in ("offered_rps", "achieved_rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")
            },
            "rounds": runs,
        }
    return out


def print_writes(writes: dict[str, Any]) -> None:
    print()
    for label in (WRITE, WRITE_PG):
        if label in writes:
            w = writes[label]
            print(
                f"{label}: {w['rps']:.0f} req/s (16 connections, Idempotency-Key on each), p99 "
                f"{w['p99_ms']:.2f} ms, {w['commands_per_commit']} commands per commit (median)"
            )
    for kind, what in (("fixed", "BENCH_OPEN_RATE"), ("scaled", "scaled to this machine")):
        if f"open_loop_{kind}" in writes:
            o = writes[f"open_loop_{kind}"]
            print(
                f"{WRITE} at {o['offered_rps']:.0f}/s offered ({what}, open loop): "
                f"{o['achieved_rps']:.0f} req/s served, p50 {o['p50_ms']:.2f} ms, "
                f"p90 {o['p90_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms (round medians)"
            )


def access_lines(gateway: Proc | None, targets: list[Target]) -> dict[str, int]:
    """Access lines in the INFO gateway's log (read after it stopped, so after its last flush)
    against the requests wrk saw answered by it in the rounds: none may be missing (warm-up,
    smoke and readiness requests only add lines)."""
    lines = 0
    if gateway is not None:
        with gateway.log_path.open("rb") as log:
            lines = sum(1 for line in log if ACCESS_LINE in line)
    served = sum(r.requests for t in targets if t.label == ME_INFO for r in t.runs)
    return {"lines": lines, "requests": served}


def main(argv: list[str] | None = None) -> int:
    s = settings_from(argv)
    wrk = ensure_wrk()

    # SIGTERM (e.g. from a CI timeout) must unwind through the finally blocks like Ctrl-C does.
    def on_term(signum: int, _: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="stratus-bench-"))
    ok = False
    try:
        code = bench(s, wrk, tmp)
        ok = True
        return code
    except KeyboardInterrupt:
        print("\nbench: interrupted; stack and baseline stopped", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"bench: logs kept in {tmp}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
