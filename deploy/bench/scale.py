"""`make bench-scale`: does a request cost more as an account grows?

It starts a throw-away stack (`stratus up`, as `make bench` runs it), makes two tenants — a small
one with 150 projects and a big one with 100,000 (`--projects N`) — and, in the big tenant, an
environment with 10,000 config versions (`--versions N`), then drives each pair of targets with
wrk in interleaved rounds and prints, per pair, the big case's req/s against the small one's:

    list, first page         GET /v1/projects?limit=100           small vs big
    list, deep page          a page by cursor: the second of the small tenant, the 500th of the big
    list, by name            GET /v1/projects?name=…              small vs big
    create                   POST /v1/projects                    small vs big
    environment              GET /v1/envs/{id}                    fresh vs 10,000 versions
    versions, first page     GET /v1/envs/{id}/versions           fresh vs 10,000 versions
    variables                GET /v1/envs/{id}/vars               fresh vs 10,000 versions

"Fresh" is an environment with the same ten variables and 20 config versions (a full page).

The target (issue #9) is each big case within 2x the small one's cost, i.e. a req/s ratio of at
least 0.5. Then, with the stack stopped, it loads the two environments in this process from
their stores with an empty cache (what a replica's first read after a restart pays), with the
store's snapshots and without them (`STRATUS_SNAPSHOT_INTERVAL=0` is what loading costs with no
snapshot), and prints the medians. Seeding goes over the bus, straight to the projects service
(the same commands the gateway sends), at the stack's write rate: 100,000 projects take a few
minutes on a 2-core machine.

Settings: `--quick` (1 round of 2 s, 5,000 projects, 500 versions: a smoke run), `--projects`,
`--versions`, and the `make bench` variables BENCH_DURATION, BENCH_ROUNDS, BENCH_CONNECTIONS,
BENCH_THREADS. Results are printed and written to `bench-results/scale.json`. Nothing here
asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, WrkResult, ensure_wrk, parse_wrk

from stratus_bus import Bus
from stratus_contracts import envs as e
from stratus_contracts import keys
from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.ids import decode_id
from stratus_testing import Stack

HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "bench-results" / "scale.json"
POST_SCRIPT = HERE / "post_projects.lua"
SEED_CONCURRENCY = 64
SMALL_PROJECTS = 150
FRESH_VERSIONS = 20  # a full first page of versions, the same ten variables as the long history


@dataclass
class Target:
    label: str
    path: str
    key: str
    post: bool = False
    runs: list[WrkResult] = field(default_factory=list)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def wrk(binary: str, target: Target, base: str, seconds: int, tag: str) -> WrkResult:
    argv = [
        binary,
        f"-t{_env_int('BENCH_THREADS', 2)}",
        f"-c{_env_int('BENCH_CONNECTIONS', 16)}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    if target.post:
        argv += ["-s", str(POST_SCRIPT), f"{base}{target.path}", "--", tag, target.key]
    else:
        argv += ["-H", f"Authorization: Bearer {target.key}", f"{base}{target.path}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed on {target.label}: {out.stderr}{out.stdout}")
    return parse_wrk(out.stdout)


def tenant(stack: Stack, name: str) -> tuple[str, str]:
    """A new account (`stratus accounts create`) on the unlimited plan: (account id, live key)."""
    out = stack.cli("accounts", "create", name, "--plan", "internal", "--json")
    if out.returncode != 0:
        raise RuntimeError(f"stratus accounts create failed: {out.stderr}")
    made = json.loads(out.stdout)
    return made["id"], made["keys"]["live"]


async def seed_projects(bus: Bus, account: str, count: int, prefix: str) -> list[str]:
    caller = Caller(account_id=account, mode="live", key_id="key_bench_seed")
    made: list[str] = [""] * count
    left = iter(range(count))

    async def worker() -> None:
        for n in left:
            project = await bus.call(c.CreateProject(caller=caller, name=f"{prefix}-{n:06d}"), timeout=60)
            made[n] = project.id

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(SEED_CONCURRENCY)))
    print(f"bench: seeded {count} projects in {time.monotonic() - started:.0f} s", flush=True)
    return made


async def production(bus: Bus, account: str, project_id: str) -> str:
    caller = Caller(account_id=account, mode="live", key_id="key_bench_seed")
    page = await bus.call(e.ListEnvironments(caller=caller, project_id=project_id))
    return next(env.id for env in page.data if env.name == "production")


async def seed_versions(bus: Bus, account: str, env_id: str, count: int) -> None:
    caller = Caller(account_id=account, mode="live", key_id="key_bench_seed")
    started = time.monotonic()
    for n in range(count):
        # Ten keys in turn: a long history of a map that stays small, as config churn makes.
        change = e.VarChange(key=f"SETTING_{n % 10}", value=f"value-{n}")
        await bus.call(e.ChangeVars(caller=caller, env_id=env_id, set=[change]), timeout=60)
    print(f"bench: made {count} config versions in {time.monotonic() - started:.0f} s", flush=True)


def deep_cursor(stack: Stack, key: str, pages: int) -> str:
    with stack.client(key) as client:
        cursor = None
        for _ in range(pages):
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            cursor = client.get("/v1/projects", params=params).json()["meta"]["next_cursor"]
    assert cursor is not None
    return cursor


def cold_loads(
    data_dir: Path, env_ids: dict[str, str], snapshots: bool, repeat: int = 15
) -> dict[str, float]:
    """Median ms to load each environment with an empty cache, in this process."""
    os.environ["STRATUS_SNAPSHOT_INTERVAL"] = "100" if snapshots else "0"
    os.environ["STRATUS_MASTER_KEY"] = (data_dir / "master.key").read_text().strip()
    from stratus_kit import open_local
    from stratus_projects.bootstrap import SERVICE

    local = open_local(SERVICE, directory=data_dir)
    try:
        part = local.partitions["live"]
        medians = {}
        for label, env_id in env_ids.items():
            aggregate = decode_id("env", env_id)
            times = []
            for _ in range(repeat):
                part.cache.clear()
                started = time.perf_counter()
                part.load(aggregate)
                times.append((time.perf_counter() - started) * 1000)
            medians[label] = round(statistics.median(times), 3)
        return medians
    finally:
        local.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/bench/scale.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, 5,000 projects, 500 versions")
    parser.add_argument("--projects", type=int, default=None, help="projects in the big tenant (100,000)")
    parser.add_argument("--versions", type=int, default=None, help="config versions of the long env (10,000)")
    args = parser.parse_args(argv)
    projects = args.projects or (5_000 if args.quick else 100_000)
    versions = args.versions or (500 if args.quick else 10_000)
    rounds = 1 if args.quick else _env_int("BENCH_ROUNDS", 5)
    seconds = 2 if args.quick else _env_int("BENCH_DURATION", 5)
    binary = ensure_wrk()
    env = {
        "STRATUS_LOG_LEVEL": "WARNING",
        "OTEL_TRACES_EXPORTER": "none",
        "STRATUS_ADMIN_KEY": keys.generate("live"),
        "STRATUS_REQUEST_TIMEOUT": "30",
    }
    tmp = Path(tempfile.mkdtemp(prefix="stratus-scale-"))
    data = tmp / "data"
    with Stack(data, env=env, ready_timeout=120) as stack:
        small_account, small_key = tenant(stack, "bench-small")
        big_account, big_key = tenant(stack, "bench-big")

        async def seed() -> tuple[list[str], list[str], str, str]:
            bus = await Bus.connect(stack.nats_url, name="bench-scale")
            try:
                small = await seed_projects(bus, small_account, SMALL_PROJECTS, "small")
                big = await seed_projects(bus, big_account, projects, "big")
                fresh_env = await production(bus, small_account, small[0])
                long_env = await production(bus, big_account, big[0])
                # The same ten variables in both; the fresh one just has a page of versions.
                await seed_versions(bus, small_account, fresh_env, FRESH_VERSIONS)
                await seed_versions(bus, big_account, long_env, versions)
                return small, big, fresh_env, long_env
            finally:
                await bus.drain()

        _, _, fresh_env, long_env = asyncio.run(seed())
        small_deep = deep_cursor(stack, small_key, 1)
        big_deep = deep_cursor(stack, big_key, max(1, projects // 200))
        middle = f"big-{projects // 2:06d}"
        pairs = [
            (
                "list, first page",
                Target("small", "/v1/projects?limit=100", small_key),
                Target("big", "/v1/projects?limit=100", big_key),
            ),
            (
                "list, deep page",
                Target("small", f"/v1/projects?limit=100&cursor={small_deep}", small_key),
                Target("big", f"/v1/projects?limit=100&cursor={big_deep}", big_key),
            ),
            (
                "list, by name",
                Target("small", f"/v1/projects?name=small-{SMALL_PROJECTS // 2:06d}", small_key),
                Target("big", f"/v1/projects?name={middle}", big_key),
            ),
            (
                "create",
                Target("small", "/v1/projects", small_key, post=True),
                Target("big", "/v1/projects", big_key, post=True),
            ),
            (
                "environment",
                Target("fresh", f"/v1/envs/{fresh_env}", small_key),
                Target(f"{versions} versions", f"/v1/envs/{long_env}", big_key),
            ),
            (
                "versions, first page",
                Target("fresh", f"/v1/envs/{fresh_env}/versions", small_key),
                Target(f"{versions} versions", f"/v1/envs/{long_env}/versions", big_key),
            ),
            (
                "variables",
                Target("fresh", f"/v1/envs/{fresh_env}/vars", small_key),
                Target(f"{versions} versions", f"/v1/envs/{long_env}/vars", big_key),
            ),
        ]
        for _, a, b in pairs:  # warm-up, not reported
            wrk(binary, a, stack.base_url, 1, f"w{uuid.uuid4().hex[:4]}")
            wrk(binary, b, stack.base_url, 1, f"w{uuid.uuid4().hex[:4]}")
        for n in range(1, rounds + 1):
            print(f"bench: round {n}/{rounds}", flush=True)
            for label, a, b in pairs:
                for target in (a, b):
                    result = wrk(binary, target, stack.base_url, seconds, f"r{n}{target.label[0]}")
                    target.runs.append(result)
                    flag = f"  ERRORS {result.errors}" if result.errors else ""
                    print(f"  {label:<22}{target.label:<16}{result.rps:>9.0f} req/s{flag}", flush=True)
    loads = {
        "with snapshots": cold_loads(data, {"fresh": fresh_env, f"{versions} versions": long_env}, True),
        "without snapshots": cold_loads(data, {"fresh": fresh_env, f"{versions} versions": long_env}, False),
    }
    rows = []
    print()
    print(f"medians of {rounds} interleaved round(s); {projects} projects in the big tenant")
    print(f"{'pair':<22}{'small req/s':>13}{'big req/s':>11}{'big/small':>11}{'p99 small/big ms':>20}")
    for label, a, b in pairs:
        ratios = [rb.rps / ra.rps for ra, rb in zip(a.runs, b.runs, strict=True) if ra.rps]
        row = {
            "pair": label,
            "small": a.label,
            "big": b.label,
            "small_rps": round(statistics.median(r.rps for r in a.runs), 1),
            "big_rps": round(statistics.median(r.rps for r in b.runs), 1),
            "ratio": round(statistics.median(ratios), 3),
            "small_p99_ms": round(statistics.median(r.p99_ms for r in a.runs), 2),
            "big_p99_ms": round(statistics.median(r.p99_ms for r in b.runs), 2),
            "errors": sum(r.errors for r in (*a.runs, *b.runs)),
        }
        rows.append(row)
        print(
            f"{label:<22}{row['small_rps']:>13.0f}{row['big_rps']:>11.0f}{row['ratio']:>10.3f}x"
            f"{row['small_p99_ms']:>10.2f} /{row['big_p99_ms']:>7.2f}"
        )
    print()
    print("cold load of an environment (empty cache, in process), median ms:")
    for how, figures in loads.items():
        print(f"  {how:<20}" + "".join(f"{name}: {ms:8.3f}   " for name, ms in figures.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"projects": projects, "versions": versions, "rounds": rounds, "pairs": rows, "loads": loads},
            indent=2,
        )
        + "\n"
    )
    print(f"results: {RESULTS.relative_to(ROOT)}")
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
