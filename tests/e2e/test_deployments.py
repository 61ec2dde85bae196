"""Deployments end to end: a real git repository with a tiny app, built and served by the local
runner of a real stack, driven through the HTTP API; logs read with a real SSE client.

One stack for the module (its own: small log and health-check limits, so the volume and
failure tests run in seconds). Every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from stratus_contracts import keys
from stratus_testing import Stack, apps
from tests.e2e.conftest import problem

BUILD_LOG_LIMIT = 60_000
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "STRATUS_ADMIN_KEY": keys.generate("live"),
        "STRATUS_BUILD_LOG_LIMIT": str(BUILD_LOG_LIMIT),
        "STRATUS_HEALTH_TIMEOUT": "8",
        "STRATUS_BUILD_TIMEOUT": "120",
    }
    with Stack(tmp_path_factory.mktemp("deploy-stack"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.live_key) as c:
        c.timeout = httpx.Timeout(30.0)
        yield c


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def project_with_repo(client: httpx.Client, name: str, repo: Path, **settings: str) -> dict:
    created = client.post("/v1/projects", json={"name": name})
    assert created.status_code == 201, created.text
    project = created.json()["data"]
    build = {
        "repo_url": repo.as_uri(),
        "build_command": apps.BUILD_COMMAND,
        "start_command": apps.START_COMMAND,
        "health_check_path": apps.HEALTH_PATH,
        **settings,
    }
    patched = client.patch(f"/v1/projects/{project['id']}", json={"build": build})
    assert patched.status_code == 200, patched.text
    return patched.json()["data"]


def env_of(client: httpx.Client, project_id: str, name: str = "production") -> dict:
    envs = client.get(f"/v1/projects/{project_id}/envs").json()["data"]
    return next(e for e in envs if e["name"] == name)


def set_var(client: httpx.Client, env_id: str, key: str, value: str, secret: bool = False) -> None:
    r = client.post(f"/v1/envs/{env_id}/vars", json={"key": key, "value": value, "secret": secret})
    assert r.status_code in (200, 201), r.text


def deploy(client: httpx.Client, project_id: str, **body: Any) -> dict:
    r = client.post("/v1/deployments", json={"project": project_id, "env": "production", **body})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/deployments/{r.json()['data']['id']}"
    return r.json()["data"]


def get(client: httpx.Client, deployment_id: str) -> dict:
    r = client.get(f"/v1/deployments/{deployment_id}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def settled(client: httpx.Client, deployment_id: str, timeout: float = 120.0) -> dict:
    def done() -> dict | None:
        d = get(client, deployment_id)
        return d if d["status"] not in ("queued", "building", "deploying") else None

    return wait_for(done, timeout, f"{deployment_id} to finish")


def all_lines(client: httpx.Client, deployment_id: str) -> list[dict]:
    lines: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        r = client.get(f"/v1/deployments/{deployment_id}/logs", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        lines += body["data"]
        if not body["meta"]["has_more"]:
            return lines
        cursor = body["meta"]["next_cursor"]


def sse_lines(client: httpx.Client, deployment_id: str, **params: Any) -> tuple[list[dict], str]:
    """Every log event of one SSE connection, and how it ended (`end` data's status)."""
    seen: list[dict] = []
    with connect_sse(client, "GET", f"/v1/deployments/{deployment_id}/logs", params=params) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for event in source.iter_sse():
            if event.event == "end":
                return seen, event.json()["status"]
            if event.event == "log":
                seen.append({**event.json(), "id": event.id})
    raise AssertionError("the stream closed without an end event")


def fetch(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5.0, trust_env=False)


def test_deploy_stream_serve_redeploy_and_roll_back(client: httpx.Client, tmp_path: Path) -> None:
    repo = apps.make_repo(tmp_path / "app")
    project = project_with_repo(client, "deploy-me", repo)
    env = env_of(client, project["id"])
    set_var(client, env["id"], "GREETING", "hello-one", secret=True)
    config_one = env_of(client, project["id"])["config_version"]

    first = deploy(client, project["id"], ref="main")
    assert first["status"] == "queued"
    assert first["project"] == project["id"] and first["env"] == "production"
    assert first["config_version"] == config_one

    # The build's log, live, with a real SSE client: to the end of the build.
    events, status = sse_lines(client, first["id"])
    assert status == "ready"
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e["id"] for e in events] == [str(s) for s in seqs]
    texts = [(e["stream"], e["text"]) for e in events]
    assert ("stdout", "building v1") in texts
    assert ("stderr", "warming the cache") in texts
    assert not any("hello-one" in e["text"] for e in events), "a secret reached the log"

    ready = get(client, first["id"])
    assert ready["status"] == "ready" and ready["sha"] and len(ready["sha"]) == 40
    assert ready["url"]
    served = fetch(ready["url"])
    assert served.status_code == 200
    assert "v1" in served.text and "hello-one" in served.text

    # The environment reports where it is served (projects hears `deployment.succeeded`).
    shown = wait_for(
        lambda: (e := env_of(client, project["id"]))["deployment_id"] == first["id"] and e,
        30,
        "the env's url",
    )
    assert shown["url"] == ready["url"]

    # `follow=true` keeps the stream open for the app's own lines: a request makes one.
    last = events[-1]["seq"]
    with connect_sse(
        client,
        "GET",
        f"/v1/deployments/{first['id']}/logs",
        params={"follow": "true"},
        headers={"Last-Event-ID": str(last)},
    ) as source:
        assert fetch(ready["url"] + "/ping").status_code == 200
        for event in source.iter_sse():
            if event.event == "log":
                line = event.json()
                assert line["seq"] > last
                if (line["stream"], line["text"]) == ("stdout", "ping"):
                    break

    # A second version, with changed config: the first is superseded, the URL stays.
    sha_two = apps.commit_version(repo, "v2")
    set_var(client, env["id"], "GREETING", "hello-two", secret=True)
    second = settled(client, deploy(client, project["id"])["id"])
    assert second["status"] == "ready", second
    assert second["sha"] == sha_two
    assert second["url"] == ready["url"]
    body = fetch(second["url"]).text
    assert "v2" in body and "hello-two" in body
    assert get(client, first["id"])["status"] == "superseded"

    # Roll back: the first artifact and its config, no build.
    r = client.post(f"/v1/deployments/{first['id']}/rollback")
    assert r.status_code == 202, r.text
    back = r.json()["data"]
    assert back["rollback_of"] == first["id"] and back["sha"] == ready["sha"]
    assert back["config_version"] == config_one
    back = settled(client, back["id"])
    assert back["status"] == "ready", back
    body = fetch(back["url"]).text
    assert "v1" in body and "hello-one" in body
    assert get(client, second["id"])["status"] == "superseded"
    rolled = [line["text"] for line in all_lines(client, back["id"])]
    assert not any(t.startswith("building ") for t in rolled), "a rollback rebuilt"

    listed = client.get("/v1/deployments", params={"project": project["id"]}).json()["data"]
    assert [d["id"] for d in listed] == [back["id"], second["id"], first["id"]]
    only_ready = client.get("/v1/deployments", params={"project": project["id"], "status": "ready"}).json()
    assert [d["id"] for d in only_ready["data"]] == [back["id"]]


def test_failing_build_keeps_its_logs(client: httpx.Client, tmp_path: Path) -> None:
    repo = apps.make_repo(tmp_path / "app")
    apps.commit_failing_build(repo)
    project = project_with_repo(client, "deploy-fails", repo)
    done = settled(client, deploy(client, project["id"])["id"])
    assert done["status"] == "failed"
    assert done["failure_code"] == "build_failed"
    assert "status 1" in done["reason"]
    texts = [(line["stream"], line["text"]) for line in all_lines(client, done["id"])]
    assert ("stderr", "error: something broke") in texts
    assert any(stream == "system" and "Failed" in text for stream, text in texts)
    r = client.post(f"/v1/deployments/{done['id']}/rollback")
    problem(r, 409, "deployment_not_ready")


def test_logs_since_is_a_time_with_an_offset(client: httpx.Client, tmp_path: Path) -> None:
    repo = apps.make_repo(tmp_path / "app")
    apps.commit_failing_build(repo)
    project = project_with_repo(client, "deploy-since", repo)
    done = settled(client, deploy(client, project["id"])["id"])
    lines = all_lines(client, done["id"])
    assert len(lines) >= 2
    cut = lines[len(lines) // 2]
    at = datetime.fromisoformat(cut["ts"])
    path = f"/v1/deployments/{done['id']}/logs"
    expected = [line["seq"] for line in lines if datetime.fromisoformat(line["ts"]) >= at]
    # The same instant in UTC and at +02:00: the same lines.
    for since in (at.astimezone(UTC).isoformat(), at.astimezone(timezone(timedelta(hours=2))).isoformat()):
        page = client.get(path, params={"since": since, "limit": 1000})
        assert page.status_code == 200, page.text
        assert [line["seq"] for line in page.json()["data"]] == expected, since
    # Without an offset it names a different instant on every machine: refused, as elsewhere.
    naive = at.astimezone(UTC).replace(tzinfo=None).isoformat()
    body = problem(client.get(path, params={"since": naive}), 422, "validation_failed")
    assert body["errors"][0]["field"] == "since"
    streamed = client.get(path, params={"since": naive}, headers={"Accept": "text/event-stream"})
    problem(streamed, 422, "validation_failed")


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown-ref", "ref_not_found"),
        ("unreachable", "repo_unreachable"),
        ("unhealthy", "health_check_failed"),
    ],
)
def test_failures_say_why(client: httpx.Client, tmp_path: Path, case: str, code: str) -> None:
    repo = apps.make_repo(tmp_path / "app")
    if case == "unhealthy":
        apps.commit_unhealthy_app(repo)
    settings = {"repo_url": (tmp_path / "nowhere").as_uri()} if case == "unreachable" else {}
    project = project_with_repo(client, f"deploy-{case}", repo, **settings)
    body = {"ref": "no-such-branch"} if case == "unknown-ref" else {}
    done = settled(client, deploy(client, project["id"], **body)["id"])
    assert done["status"] == "failed", done
    assert done["failure_code"] == code
    assert done["reason"]
    assert all_lines(client, done["id"]), "no log kept"


def test_cancel_a_build(client: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    repo = apps.make_repo(tmp_path / "app")
    apps.commit_gated_build(repo)
    project = project_with_repo(client, "deploy-cancel", repo)
    set_var(client, env_of(client, project["id"])["id"], "GATE", str(gate))
    started = deploy(client, project["id"])
    wait_for(
        lambda: any(line["text"] == apps.GATED_BUILD_LINE for line in all_lines(client, started["id"])),
        60,
        "the build to wait at its gate",
    )
    r = client.post(f"/v1/deployments/{started['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "canceled"
    gate.touch()  # were the build still running, it would now finish
    done = get(client, started["id"])
    assert done["status"] == "canceled"
    problem(client.post(f"/v1/deployments/{started['id']}/cancel"), 409, "deployment_not_cancelable")
    wait_for(
        lambda: any(line["text"] == "Canceled." for line in all_lines(client, started["id"])),
        30,
        "the cancel's line",
    )
    assert get(client, started["id"])["status"] == "canceled"


def test_kill_9_mid_build_leaves_nothing_stuck(stack: Stack, client: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    repo = apps.make_repo(tmp_path / "app")
    apps.commit_gated_build(repo)
    project = project_with_repo(client, "deploy-killed", repo)
    set_var(client, env_of(client, project["id"])["id"], "GATE", str(gate))
    started = deploy(client, project["id"])
    wait_for(lambda: get(client, started["id"])["status"] == "building", 60, "building")
    wait_for(
        lambda: any(line["text"] == apps.GATED_BUILD_LINE for line in all_lines(client, started["id"])),
        60,
        "the gate",
    )
    old = stack.service_pid("deployments")
    os.kill(old, signal.SIGKILL)
    stack.wait_restarted("deployments", old, timeout=60)
    gate.touch()
    done = settled(client, started["id"])
    assert done["status"] == "ready", done
    texts = [line["text"] for line in all_lines(client, started["id"])]
    assert any("restarted during this deployment" in t for t in texts)
    assert fetch(done["url"]).status_code == 200


def test_a_huge_build_log_is_kept_in_order_and_resumed_without_gaps(
    client: httpx.Client, tmp_path: Path
) -> None:
    lines = 100_000
    repo = apps.make_repo(tmp_path / "app")
    apps.commit_chatty_build(repo, lines)
    project = project_with_repo(client, "deploy-chatty", repo)
    started = deploy(client, project["id"])

    # Ten reconnects with Last-Event-ID while the build prints, then to the end.
    seen: list[dict] = []
    last_id: str | None = None
    reconnects = 0
    status = None
    while status is None:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        with connect_sse(client, "GET", f"/v1/deployments/{started['id']}/logs", headers=headers) as source:
            for n, event in enumerate(source.iter_sse()):
                if event.event == "end":
                    status = event.json()["status"]
                    break
                if event.event != "log":
                    continue
                seen.append(event.json())
                last_id = event.id
                if reconnects < 10 and n >= 2_000:
                    reconnects += 1
                    break
    assert reconnects == 10
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(1, len(seqs) + 1)), "a gap or a repeat"
    user = [e["text"] for e in seen if e["stream"] == "stdout" and e["text"].startswith("line ")]
    assert user == [apps.chatty_line(n) for n in range(BUILD_LOG_LIMIT)]
    cut = [e["text"] for e in seen if e["stream"] == "system" and "reached its limit" in e["text"]]
    # The build's lines come before the app's: the limit's line right after the last one kept.
    last_kept = next(n for n, e in enumerate(seen) if e["text"] == apps.chatty_line(BUILD_LOG_LIMIT - 1))
    assert "reached its limit" in seen[last_kept + 1]["text"]
    assert len(cut) == 1, cut
    assert any(f"{lines - BUILD_LOG_LIMIT:,} build log lines were not kept" in e["text"] for e in seen)


def test_bad_input(client: httpx.Client, tmp_path: Path) -> None:
    problem(client.post("/v1/deployments", json={"project": "prj_nope"}), 404, "project_not_found")
    repo = apps.make_repo(tmp_path / "app")
    project = project_with_repo(client, "deploy-bad-input", repo)
    problem(
        client.post("/v1/deployments", json={"project": project["id"], "env": "nope"}),
        404,
        "environment_not_found",
    )
    problem(
        client.post("/v1/deployments", json={"project": project["id"], "ref": "main", "sha": "abcdef1"}),
        422,
        "validation_failed",
    )
    problem(
        client.post("/v1/deployments", json={"project": project["id"], "sha": "xyz"}),
        422,
        "validation_failed",
    )
    bare = client.post("/v1/projects", json={"name": "deploy-no-settings"}).json()["data"]
    problem(client.post("/v1/deployments", json={"project": bare["id"]}), 422, "deploy_settings_missing")
    problem(client.get("/v1/deployments/dep_nope"), 404, "deployment_not_found")
    problem(client.get("/v1/deployments/dep_nope/logs"), 404, "deployment_not_found")
    problem(client.post("/v1/deployments/dep_nope/cancel"), 404, "deployment_not_found")


def test_other_tenants_see_nothing(stack: Stack, client: httpx.Client, tmp_path: Path) -> None:
    repo = apps.make_repo(tmp_path / "app")
    project = project_with_repo(client, "deploy-private", repo)
    mine = deploy(client, project["id"])
    made = stack.cli("accounts", "create", "deploy-tenant-b", "--json")
    assert made.returncode == 0, made.stderr
    for key in (stack.test_key, json.loads(made.stdout)["keys"]["live"]):
        with stack.client(key) as other:
            problem(other.get(f"/v1/deployments/{mine['id']}"), 404, "deployment_not_found")
            problem(other.get(f"/v1/deployments/{mine['id']}/logs"), 404, "deployment_not_found")
            problem(other.post(f"/v1/deployments/{mine['id']}/cancel"), 404, "deployment_not_found")
            problem(other.post(f"/v1/deployments/{mine['id']}/rollback"), 404, "deployment_not_found")
            assert other.get("/v1/deployments").json()["data"] == []
            problem(other.post("/v1/deployments", json={"project": project["id"]}), 404, "project_not_found")
    settled(client, mine["id"])


def test_a_restarted_stack_serves_its_environments_again(
    stack: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    """Last in this module: it stops and starts the module's stack. A clean stop stops the apps
    (nothing is left running); the next start serves each environment again at the same URL."""
    repo = apps.make_repo(tmp_path / "app")
    project = project_with_repo(client, "deploy-restarted", repo)
    done = settled(client, deploy(client, project["id"])["id"])
    assert done["status"] == "ready", done
    assert "version=v1" in fetch(done["url"]).text

    stack.stop()
    with pytest.raises(httpx.TransportError):
        fetch(done["url"])
    assert not list((stack.data_dir / "runner" / "instances").glob("*.json")), "an app outlived the stack"

    stack.start()
    served = wait_for(lambda: _served(done["url"]), 60, "the environment to be served again")
    assert "version=v1" in served
    assert get(client, done["id"])["status"] == "ready"


def _served(url: str) -> str | None:
    try:
        response = fetch(url)
    except httpx.TransportError:
        return None
    return response.text if response.status_code == 200 else None
