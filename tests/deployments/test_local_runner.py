"""The local runner against real git repositories, real processes and real HTTP (no mocks)."""

# Tests look at small local files between awaits; nothing else runs on their loop meanwhile.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stratus_deployments.runner import procs
from stratus_deployments.runner.base import Instance, RunnerError, Spec
from stratus_deployments.runner.local import LocalRunner
from stratus_testing import apps
from tests.deployments.conftest import Collected, gone, until


async def deploy(runner: LocalRunner, spec: Spec, log: Collected | None = None) -> tuple[Instance, str]:
    log = log if log is not None else Collected()
    workspace = await runner.prepare(spec, log)
    artifact = await runner.build(workspace, log)
    instance = await runner.start(artifact, spec, log)
    await runner.health(instance, spec, log)
    return instance, await runner.switch(instance)


async def test_deploy_builds_starts_and_serves_through_the_environment(
    runner: LocalRunner, repo: Path
) -> None:
    log = Collected()
    spec = apps.spec(repo, ref="main", variables={"GREETING": "hello"})

    workspace = await runner.prepare(spec, log)
    assert workspace.sha == apps.head(repo)
    artifact = await runner.build(workspace, log)
    assert runner.artifact(spec.deployment_id) == artifact
    assert artifact.sha == workspace.sha
    assert not Path(workspace.path).exists()
    instance = await runner.start(artifact, spec, log)
    await runner.health(instance, spec, log)
    url = await runner.switch(instance)

    assert await apps.get(url) == (200, "version=v1 greeting=hello build=built v1")
    assert (await apps.get(instance.url))[0] == 200
    assert url != instance.url
    assert f"Cloning {repo.resolve().as_uri()} at main" in log.of("system")
    assert f"Checked out {workspace.sha[:7]}" in log.of("system")
    assert log.of("stdout")[:2] == ["building v1", "build done"]
    assert "warming the cache" in log.of("stderr")
    await until(lambda: "app started" in log.of("stderr"), "the app's own output")
    assert f"app v1 listening on port {instance.handle['port']}" in log.of("stdout")


async def test_default_branch_tags_and_shas(runner: LocalRunner, repo: Path) -> None:
    first = apps.head(repo)
    apps.git(repo, "tag", "v1")
    second = apps.commit_version(repo, "v2")
    log = Collected()

    assert (await runner.prepare(apps.spec(repo), log)).sha == second
    assert (await runner.prepare(apps.spec(repo, ref="v1"), log)).sha == first
    assert (await runner.prepare(apps.spec(repo, sha=first[:10], ref="main"), log)).sha == first
    assert (await runner.prepare(apps.spec(str(repo), ref="main"), log)).sha == second  # a plain path


async def test_a_switch_under_load_fails_no_request(runner: LocalRunner, repo: Path) -> None:
    old, url = await deploy(runner, apps.spec(repo, ref="main"))
    new_spec = apps.spec(repo, sha=apps.commit_version(repo, "v2"))
    workspace = await runner.prepare(new_spec, Collected())
    new = await runner.start(await runner.build(workspace, Collected()), new_spec, Collected())
    await runner.health(new, new_spec, Collected())

    workers = 4
    seen: list[list[str]] = [[] for _ in range(workers)]
    failures: list[str] = []
    done = asyncio.Event()

    async def client(i: int) -> None:
        while not done.is_set():
            try:
                status, body = await apps.get(url)
            except (OSError, TimeoutError) as exc:
                failures.append(repr(exc))
                continue
            if status != 200:
                failures.append(f"{status} {body}")
            seen[i].append(body.split()[0])

    def each_saw(version: str, count: int) -> Callable[[], bool]:
        return lambda: all(answers.count(version) >= count for answers in seen)

    clients = [asyncio.create_task(client(i)) for i in range(workers)]
    try:
        await until(each_saw("version=v1", 5), "v1 answers")
        assert await runner.switch(new) == url
        await until(each_saw("version=v2", 1), "every client on v2")
        await runner.stop(old)  # after each client's last v1 request: nothing in flight there
        await until(each_saw("version=v2", 20), "more v2 answers")
    finally:
        done.set()
        await asyncio.gather(*clients)

    assert failures == []
    for answers in seen:
        switched = answers.index("version=v2")
        assert set(answers[:switched]) == {"version=v1"}
        assert set(answers[switched:]) == {"version=v2"}
    assert gone(int(old.handle["pid"]))


async def test_failed_build_logs_its_output(runner: LocalRunner, repo: Path) -> None:
    log = Collected()
    spec = apps.spec(repo, sha=apps.commit_failing_build(repo))
    workspace = await runner.prepare(spec, log)

    with pytest.raises(RunnerError) as failed:
        await runner.build(workspace, log)

    assert failed.value.code == "build_failed"
    assert failed.value.reason == "The build command exited with status 1."
    assert log.of("stdout") == ["compiling"]
    assert log.of("stderr") == ["error: something broke"]
    assert runner.artifact(spec.deployment_id) is None


async def test_unknown_ref_or_sha(runner: LocalRunner, repo: Path) -> None:
    for spec in (apps.spec(repo, ref="no-such-branch"), apps.spec(repo, sha="0123456789abcdef")):
        with pytest.raises(RunnerError) as failed:
            await runner.prepare(spec, Collected())
        assert failed.value.code == "ref_not_found"
        assert not (runner.root / "workspaces" / spec.deployment_id).exists()


async def test_unreachable_repo_without_its_credentials(runner: LocalRunner, tmp_path: Path) -> None:
    log = Collected()
    with pytest.raises(RunnerError) as failed:
        await runner.prepare(apps.spec(f"file://{tmp_path}/missing", ref="main"), log)
    assert failed.value.code == "repo_unreachable"
    assert "missing" in failed.value.reason

    with pytest.raises(RunnerError) as failed:
        await runner.prepare(apps.spec("http://someone:hunter2@127.0.0.1:9/app.git"), log)
    assert failed.value.code == "repo_unreachable"
    assert "hunter2" not in failed.value.reason
    assert not any("hunter2" in text for _, text in log)


async def test_build_timeout_kills_the_build(
    make_runner: Callable[..., LocalRunner], repo: Path, pids_file: Path
) -> None:
    runner = make_runner(build_timeout=2.0)
    spec = apps.spec(repo, sha=apps.commit_hanging_build(repo), variables={"PIDS_FILE": str(pids_file)})
    workspace = await runner.prepare(spec, Collected())
    log = Collected()

    build = asyncio.create_task(runner.build(workspace, log))
    await until(pids_file.exists, "the build's pids")
    with pytest.raises(RunnerError) as failed:
        await build

    assert failed.value.code == "build_timeout"
    assert failed.value.reason == "The build command did not finish within 2 s."
    assert log.of("stdout") == ["waiting"]
    for pid in pids_file.read_text().split():
        await until(lambda pid=pid: gone(int(pid)), f"build process {pid} gone")


async def test_cancelling_a_build_kills_its_process_group(
    runner: LocalRunner, repo: Path, pids_file: Path
) -> None:
    spec = apps.spec(repo, sha=apps.commit_hanging_build(repo), variables={"PIDS_FILE": str(pids_file)})
    workspace = await runner.prepare(spec, Collected())

    build = asyncio.create_task(runner.build(workspace, Collected()))
    await until(pids_file.exists, "the build's pids")
    assert (runner.root / "builds" / f"{spec.deployment_id}.json").exists()
    build.cancel()
    with pytest.raises(asyncio.CancelledError):
        await build

    for pid in pids_file.read_text().split():  # the build and the child it started
        await until(lambda pid=pid: gone(int(pid)), f"build process {pid} gone")
    assert not (runner.root / "builds" / f"{spec.deployment_id}.json").exists()


async def test_an_app_never_healthy_fails_and_is_stopped(
    make_runner: Callable[..., LocalRunner], repo: Path
) -> None:
    runner = make_runner(health_timeout=1.0)
    spec = apps.spec(repo, sha=apps.commit_unhealthy_app(repo))
    log = Collected()
    workspace = await runner.prepare(spec, log)
    instance = await runner.start(await runner.build(workspace, log), spec, log)

    with pytest.raises(RunnerError) as failed:
        await runner.health(instance, spec, log)

    assert failed.value.code == "health_check_failed"
    assert "/healthz" in failed.value.reason
    assert "503" in failed.value.reason
    assert gone(int(instance.handle["pid"]))
    assert not (runner.root / "instances" / f"{spec.deployment_id}.json").exists()


async def test_an_app_that_exits_fails_to_start_with_its_status(runner: LocalRunner, repo: Path) -> None:
    spec = apps.spec(repo, ref="main", start_command="echo 'no config' >&2; exit 3")
    log = Collected()
    workspace = await runner.prepare(spec, log)
    instance = await runner.start(await runner.build(workspace, log), spec, log)

    with pytest.raises(RunnerError) as failed:
        await runner.health(instance, spec, log)

    assert failed.value.code == "start_failed"
    assert "exited with status 3" in failed.value.reason
    assert "no config" in log.of("stderr")


async def test_variables_reach_the_app_and_nothing_else(
    runner: LocalRunner, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUS_MASTER_KEY", "the-service-master-key")
    secrets = {"GREETING": "greeting-secret-1234", "API_TOKEN": "token-secret-5678"}
    log = Collected()
    instance, url = await deploy(runner, apps.spec(repo, ref="main", variables=secrets), log)
    await until(lambda: "app started" in log.of("stderr"), "the app's output")

    assert "greeting=greeting-secret-1234" in (await apps.get(url))[1]
    names = (await apps.get(url, "/env"))[1].split()
    assert {"GREETING", "API_TOKEN", "PORT", "PATH"} <= set(names)
    assert "STRATUS_MASTER_KEY" not in names
    for value in secrets.values():
        assert not any(value in text for _, text in log)
        assert value not in repr(instance)
        for path in runner.root.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


async def test_adopt_resumes_logs_and_the_proxy_where_an_earlier_runner_left(
    make_runner: Callable[..., LocalRunner], repo: Path
) -> None:
    first_log = Collected()
    first = make_runner()
    instance, url = await deploy(first, apps.spec(repo, ref="main"), first_log)
    await until(lambda: "app started" in first_log.of("stderr"), "the app's output")
    await first.close()
    with pytest.raises(ConnectionRefusedError):
        await apps.get(url)  # the proxy went with its runner; the instance did not

    second = make_runner()
    [found] = await second.recover()
    assert found == instance
    log = Collected()
    await second.adopt(found, log)

    assert (await apps.get(url))[0] == 200
    await apps.get(url, "/ping")
    await until(lambda: "ping" in log.of("stdout"), "output written after the adoption")
    assert log.of("stdout") == ["ping"]  # nothing the first runner had delivered already
    await second.stop(found)
    assert gone(int(found.handle["pid"]))


async def test_recover_after_the_service_was_killed(
    make_runner: Callable[..., LocalRunner], repo: Path, service: Callable, tmp_path: Path
) -> None:
    root = tmp_path / "runner"
    spec = apps.spec(repo, ref="main", variables={"GREETING": "survivor"})
    parent, said = await service("deploy", root, spec)
    url, pid = said["url"], int(said["pid"])
    assert "greeting=survivor" in (await apps.get(url))[1]

    os.kill(parent, signal.SIGKILL)
    await until(lambda: gone(parent), "the service process gone")
    await until(lambda: _refused(url), "the proxy gone with its process")
    assert not gone(pid)

    runner = make_runner(root)
    [found] = await runner.recover()
    assert (found.deployment_id, found.handle["pid"]) == (spec.deployment_id, str(pid))
    await runner.adopt(found, Collected())
    assert await apps.get(url) == (200, "version=v1 greeting=survivor build=built v1")
    await runner.stop(found)
    assert await runner.recover() == []


def _refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    except OSError:
        return True
    return False


async def test_recover_kills_a_build_left_behind(
    make_runner: Callable[..., LocalRunner], repo: Path, service: Callable, tmp_path: Path, pids_file: Path
) -> None:
    root = tmp_path / "runner"
    spec = apps.spec(repo, sha=apps.commit_hanging_build(repo), variables={"PIDS_FILE": str(pids_file)})
    parent, said = await service("build", root, spec)
    await until(pids_file.exists, "the build's pids")
    os.kill(parent, signal.SIGKILL)
    await until(lambda: gone(parent), "the service process gone")
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert not any(gone(pid) for pid in pids)

    assert await make_runner(root).recover() == []

    for pid in pids:
        await until(lambda pid=pid: gone(pid), f"build process {pid} gone")
    assert not list((root / "builds").iterdir())
    assert not Path(said["workspace"]).exists()


async def test_stop_is_idempotent(runner: LocalRunner, repo: Path) -> None:
    instance, _ = await deploy(runner, apps.spec(repo, ref="main"))

    await runner.stop(instance)
    await runner.stop(instance)

    assert gone(int(instance.handle["pid"]))
    assert not (runner.root / "instances" / f"{instance.deployment_id}.json").exists()
    assert await runner.recover() == []


async def test_an_artifact_outlives_its_instance_until_discarded(runner: LocalRunner, repo: Path) -> None:
    spec = apps.spec(repo, ref="main")
    instance, url = await deploy(runner, spec)
    await runner.stop(instance)

    artifact = runner.artifact(spec.deployment_id)
    assert artifact is not None
    again = await runner.start(artifact, spec, Collected())  # a rollback: no build
    await runner.health(again, spec, Collected())
    assert await runner.switch(again) == url
    assert (await apps.get(url))[0] == 200

    await runner.stop(again)
    await runner.discard(spec.deployment_id)
    assert runner.artifact(spec.deployment_id) is None


async def test_a_chatty_build_delivers_every_line_in_order(runner: LocalRunner, repo: Path) -> None:
    count = 100_000
    spec = apps.spec(repo, sha=apps.commit_chatty_build(repo, count))
    log = Collected()
    await runner.build(await runner.prepare(spec, log), log)

    assert log.of("stdout") == [f"line {i:06d}" for i in range(count)]


def test_lines_are_split_decoded_and_cut() -> None:
    lines = procs.Lines()
    assert lines.feed(b"one\r\ntw") == ["one"]
    assert lines.pending == 2
    assert lines.feed(b"o\n\xff\n\n") == ["two", "\ufffd", ""]
    long = b"x" * (procs.MAX_LINE * 2 + 5)
    assert lines.feed(long + b"\n") == ["x" * procs.MAX_LINE] * 2 + ["xxxxx"]
    assert lines.feed(b"tail") == []
    assert lines.flush() == ["tail"]


def test_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUS_BUILD_TIMEOUT", "42")
    monkeypatch.setenv("STRATUS_HEALTH_TIMEOUT", "7.5")
    runner = LocalRunner.from_env(tmp_path)
    assert (runner.root, runner.build_timeout, runner.health_timeout) == (tmp_path / "runner", 42.0, 7.5)
    monkeypatch.setenv("STRATUS_BUILD_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="STRATUS_BUILD_TIMEOUT"):
        LocalRunner.from_env(tmp_path)
