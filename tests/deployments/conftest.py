"""Fixtures for runner tests: runners that clean up every process they started, even on failure."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stratus_deployments.runner import procs
from stratus_deployments.runner.local import LocalRunner
from stratus_testing import apps

# A stand-in for the deployments service, run as its own process so that a test can kill -9 it:
# it deploys (or only starts a build) and then waits for ever.
SERVICE = """
import asyncio, json, sys
from pathlib import Path
from stratus_deployments.runner.base import Spec
from stratus_deployments.runner.local import LocalRunner

async def main():
    args = json.loads(sys.argv[1])
    runner = LocalRunner(Path(args["root"]), health_timeout=20)
    spec = Spec(**args["spec"])
    log = lambda stream, text: None
    workspace = await runner.prepare(spec, log)
    if args["mode"] == "build":
        print(json.dumps({"workspace": workspace.path}), flush=True)
        await runner.build(workspace, log)
        return
    artifact = await runner.build(workspace, log)
    instance = await runner.start(artifact, spec, log)
    await runner.health(instance, spec, log)
    url = await runner.switch(instance)
    print(json.dumps({"url": url, "pid": instance.handle["pid"]}), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class Collected(list[tuple[str, str]]):
    """A `log` callback that keeps every (stream, line)."""

    def __call__(self, stream: str, text: str) -> None:
        self.append((stream, text))

    def of(self, stream: str) -> list[str]:
        return [text for s, text in self if s == stream]


async def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    """Wait for `condition()` to be true (polling), failing after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def gone(pid: int) -> bool:
    return procs.identity(pid) is None


def kill_recorded(root: Path) -> None:
    """SIGKILL every build and instance a runner's records name."""
    for folder in ("builds", "instances"):
        for path in (root / folder).glob("*.json"):
            record = json.loads(path.read_text())
            procs.kill_leftover(int(record["pgid"]), record.get("identity"))


@pytest.fixture
async def make_runner(tmp_path: Path) -> AsyncIterator[Callable[..., LocalRunner]]:
    """Runners on a root under tmp_path (one root unless told); closed, their processes killed."""
    made: list[LocalRunner] = []

    def make(root: Path | None = None, **options: Any) -> LocalRunner:
        options = {"build_timeout": 60.0, "health_timeout": 20.0, "stop_grace": 5.0, **options}
        runner = LocalRunner(root or tmp_path / "runner", **options)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        await runner.close()
    for root in {runner.root for runner in made}:
        kill_recorded(root)


@pytest.fixture
async def runner(make_runner: Callable[..., LocalRunner]) -> LocalRunner:
    return make_runner()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return apps.make_repo(tmp_path / "repo")


@pytest.fixture
def pids_file(tmp_path: Path) -> Iterator[Path]:
    """Where a hanging build writes its pids; whatever it names is killed at the end."""
    path = tmp_path / "pids"
    yield path
    if path.exists():
        for pid in path.read_text().split():
            if not gone(int(pid)):
                os.kill(int(pid), signal.SIGKILL)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[tuple[int, dict[str, Any]]]]]:
    """Start SERVICE (mode "deploy" or "build"): (its pid, what it printed). Killed at the end."""
    started: list[asyncio.subprocess.Process] = []
    roots: set[Path] = set()

    async def start(mode: str, root: Path, spec: Any) -> tuple[int, dict[str, Any]]:
        roots.add(root)
        args = {"mode": mode, "root": str(root), "spec": {**spec.__dict__, "variables": dict(spec.variables)}}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SERVICE,
            json.dumps(args),
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        started.append(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()
        assert line, "the service process ended before it said anything"
        return proc.pid, json.loads(line)

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    for root in roots:
        kill_recorded(root)  # what it left running, whether or not a test's runner took it over
