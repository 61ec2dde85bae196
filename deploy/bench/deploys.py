"""`make bench`'s deployment figures: time from `POST /v1/deployments` to `ready` for the tiny app,
and log lines a second from a chatty build to an SSE client, each next to its baseline.

* **To ready**: a project whose repository is the tiny test app (`stratus_testing.apps`: a
  build that writes a file, a stdlib HTTP server), deployed `rounds` times one after another;
  each is timed from the POST to the SSE log stream's `end` event (status `ready`). The baseline
  is the same work done by hand in this process: `git clone`, the build command, the start
  command, and polling its health check until it answers, then stopping it.
* **Log lines a second**: a build that prints `lines` lines, followed over SSE from the POST;
  timed from the first line received to the `end` event. The baseline is the same build command
  run by hand, its output read line by line from a pipe.

Medians over the rounds; nothing asserts a timing.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from stratus_testing import apps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(port: int, path: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if 200 <= conn.getresponse().status < 300:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("the app did not become healthy")


def by_hand(repo: Path, work: Path) -> float:
    """Seconds to clone, build, start and see the health check pass, without Stratus."""
    start = time.perf_counter()
    checkout = work / f"hand-{time.monotonic_ns()}"
    subprocess.run(["git", "clone", "--quiet", "--", repo.as_uri(), str(checkout)], check=True)
    subprocess.run(apps.BUILD_COMMAND, shell=True, cwd=checkout, check=True, capture_output=True)  # noqa: S602
    port = _free_port()
    app = subprocess.Popen(  # noqa: S602 - the bench's own command
        apps.START_COMMAND,
        shell=True,
        cwd=checkout,
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _healthy(port, apps.HEALTH_PATH, time.monotonic() + 60)
        return time.perf_counter() - start
    finally:
        # The shell and the app it started: their own session, so the whole group.
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(10)


def lines_by_hand(repo: Path, work: Path) -> float:
    """Lines a second of the chatty build run by hand, read line by line from its pipe."""
    checkout = work / f"chatty-{time.monotonic_ns()}"
    subprocess.run(["git", "clone", "--quiet", "--", repo.as_uri(), str(checkout)], check=True)
    proc = subprocess.Popen(apps.BUILD_COMMAND, shell=True, cwd=checkout, stdout=subprocess.PIPE)  # noqa: S602
    assert proc.stdout is not None
    first = last = None
    count = 0
    for _ in proc.stdout:
        last = time.perf_counter()
        if first is None:
            first = last
        count += 1
    proc.wait()
    return count / max((last or 0) - (first or 0), 1e-9)


def _project(client: httpx.Client, name: str, repo: Path) -> str:
    project = client.post("/v1/projects", json={"name": name}).json()["data"]["id"]
    build = {
        "repo_url": repo.as_uri(),
        "build_command": apps.BUILD_COMMAND,
        "start_command": apps.START_COMMAND,
        "health_check_path": apps.HEALTH_PATH,
    }
    r = client.patch(f"/v1/projects/{project}", json={"build": build})
    r.raise_for_status()
    return project


def _follow(client: httpx.Client, project: str) -> tuple[float, float | None, int, str]:
    """POST a deployment and follow its log to the end: (seconds to the end, seconds from the
    first line to the end, lines seen, final status)."""
    start = time.perf_counter()
    r = client.post("/v1/deployments", json={"project": project, "env": "production"})
    r.raise_for_status()
    deployment = r.json()["data"]["id"]
    first: float | None = None
    lines = 0
    with connect_sse(client, "GET", f"/v1/deployments/{deployment}/logs") as source:
        for event in source.iter_sse():
            if event.event == "log":
                lines += 1
                if first is None:
                    first = time.perf_counter()
            elif event.event == "end":
                end = time.perf_counter()
                return end - start, (end - first) if first else None, lines, event.json()["status"]
    raise RuntimeError("the log stream ended without an end event")


def measure(base_url: str, key: str, rounds: int = 5, lines: int = 100_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stratus-bench-deploy-") as tmp:
        work = Path(tmp)
        repo = apps.make_repo(work / "app")
        chatty = apps.make_repo(work / "chatty")
        apps.commit_chatty_build(chatty, lines)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=120, trust_env=False) as client:
            suffix = time.strftime("%H%M%S")
            project = _project(client, f"bench-deploy-{suffix}", repo)
            noisy = _project(client, f"bench-chatty-{suffix}", chatty)
            ready, hand, rates, hand_rates = [], [], [], []
            for _ in range(rounds):
                hand.append(by_hand(repo, work))
                seconds, _, _, status = _follow(client, project)
                if status != "ready":
                    raise RuntimeError(f"a bench deployment ended {status}")
                ready.append(seconds)
                hand_rates.append(lines_by_hand(chatty, work))
                _, streamed, seen, status = _follow(client, noisy)
                if status != "ready" or streamed is None:
                    raise RuntimeError(f"the chatty deployment ended {status}")
                rates.append(seen / streamed)
    return {
        "rounds": rounds,
        "to_ready_s": ready,
        "by_hand_s": hand,
        "log_lines_per_s": rates,
        "log_lines_by_hand_per_s": hand_rates,
        "lines": lines,
        "median": {
            "to_ready_s": statistics.median(ready),
            "by_hand_s": statistics.median(hand),
            "log_lines_per_s": statistics.median(rates),
            "log_lines_by_hand_per_s": statistics.median(hand_rates),
        },
    }


def report(figures: dict[str, Any]) -> None:
    m = figures["median"]
    print(
        f"\ndeployments ({figures['rounds']} rounds, medians):\n"
        f"  POST /v1/deployments to ready (tiny app)   {m['to_ready_s'] * 1000:8.0f} ms"
        f"   by hand (clone, build, start, health) {m['by_hand_s'] * 1000:7.0f} ms"
        f"   ratio {m['to_ready_s'] / m['by_hand_s']:.2f}x\n"
        f"  log lines/s from a build to an SSE client {m['log_lines_per_s']:8.0f}"
        f"      by hand (the build's own pipe)     {m['log_lines_by_hand_per_s']:7.0f}"
        f"   ratio {m['log_lines_per_s'] / m['log_lines_by_hand_per_s']:.3f}x"
        f"   ({figures['lines']:,} lines)"
    )
