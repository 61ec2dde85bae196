"""The `stratus` CLI driven as a user drives it — a subprocess against a real stack over HTTP:
login, projects, keys, env pull/push, deploy (following the build to `ready`, and a failing
build exiting 3), logs --follow, rollback, webhooks, listen --forward-to a real receiver that
verifies the signatures, metrics, and the exit codes scripts rely on."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from stratus_contracts import keys
from stratus_testing import Stack, apps, stratus_command, wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"STRATUS_ADMIN_KEY": keys.generate("live"), "STRATUS_HEALTH_TIMEOUT": "8"}
    with Stack(tmp_path_factory.mktemp("cli-stack"), env=env) as running:
        yield running


@pytest.fixture
def env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    """What a user's shell holds: the API's URL and key, and a config dir of their own."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUS_", "NATS_"))}
    return {
        **base,
        "STRATUS_API_URL": stack.base_url,
        "STRATUS_API_KEY": stack.live_key,
        "STRATUS_CONFIG_DIR": str(tmp_path / "config"),
        "STRATUS_DATA_DIR": str(tmp_path / "no-stack"),  # no local stack to fall back on
        "COLUMNS": "200",
    }


def run(
    env: dict[str, str], *args: str, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        stratus_command(*args),
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok_json(env: dict[str, str], *args: str) -> Any:
    done = run(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_login_stores_the_key_privately_and_commands_use_it(stack: Stack, env: dict[str, str]) -> None:
    no_key = {k: v for k, v in env.items() if k != "STRATUS_API_KEY"}
    refused = run(no_key, "whoami")
    assert refused.returncode == 4 and "stratus login" in refused.stderr
    bad = run(no_key, "login", "--key", "sk_live_" + "x" * 40)
    assert bad.returncode == 4 and "HTTP 401" in bad.stderr
    logged = run(no_key, "login", input=stack.live_key + "\n")
    assert logged.returncode == 0, logged.stderr
    profile = Path(no_key["STRATUS_CONFIG_DIR"]) / "config.json"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert stat.S_IMODE(profile.parent.stat().st_mode) == 0o700
    me = ok_json(no_key, "whoami")
    assert me["account"] == stack.account_id and me["mode"] == "live"
    assert run(no_key, "logout").returncode == 0
    assert run(no_key, "whoami").returncode == 4


def test_projects_and_exit_codes(env: dict[str, str]) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    made = ok_json(env, "projects", "create", name, "--description", "from the CLI")
    assert made["name"] == name and made["id"].startswith("prj_")
    assert made["id"] in {p["id"] for p in ok_json(env, "projects", "list")}
    table = run(env, "projects", "list")
    assert table.returncode == 0 and name in table.stdout and made["id"] in table.stdout
    shown = ok_json(env, "projects", "get", made["id"])
    assert {e["name"] for e in shown["environments"]} == {"production", "staging"}

    missing = run(env, "projects", "get", "prj_" + "a" * 26)
    assert missing.returncode == 1
    assert "project_not_found" in missing.stderr and "HTTP 404" in missing.stderr and "req_" in missing.stderr
    assert run(env, "projects", "frobnicate").returncode == 2
    assert run(env, "projects", "create").returncode == 2  # NAME missing

    gone = run(env, "projects", "delete", made["id"], "--yes")
    assert gone.returncode == 0, gone.stderr
    assert run(env, "projects", "get", made["id"]).returncode == 1


def test_keys_create_rotate_revoke(env: dict[str, str]) -> None:
    made = ok_json(env, "keys", "create", f"ci-{uuid.uuid4().hex[:6]}", "--scope", "read")
    assert made["secret"].startswith("sk_live_") and made["scopes"] == ["read"]
    with httpx.Client(base_url=env["STRATUS_API_URL"], trust_env=False) as http:
        assert http.get("/v1/me", headers={"Authorization": f"Bearer {made['secret']}"}).status_code == 200
        rotated = ok_json(env, "keys", "rotate", made["id"], "--overlap", "0")
        assert rotated["secret"] != made["secret"]
        assert http.get("/v1/me", headers={"Authorization": f"Bearer {rotated['secret']}"}).status_code == 200
        revoked = ok_json(env, "keys", "revoke", made["id"])
        assert revoked["revoked"]
        assert http.get("/v1/me", headers={"Authorization": f"Bearer {rotated['secret']}"}).status_code == 401
    listed = {k["id"]: k for k in ok_json(env, "keys", "list")}
    assert listed[made["id"]]["revoked"]


def test_env_push_then_pull(env: dict[str, str], tmp_path: Path) -> None:
    project = ok_json(env, "projects", "create", f"envs-{uuid.uuid4().hex[:6]}")
    env_id = next(
        e["id"]
        for e in ok_json(env, "projects", "get", project["id"])["environments"]
        if e["name"] == "production"
    )
    dotenv = tmp_path / "in.env"
    dotenv.write_text("GREETING=hello\nCOLOR=blue\n")
    pushed = run(env, "env", "push", env_id, str(dotenv))
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["changed"] == ["COLOR", "GREETING"]
    pulled = run(env, "env", "pull", env_id)
    assert pulled.returncode == 0 and "GREETING=hello" in pulled.stdout and "COLOR=blue" in pulled.stdout


def _project_with_repo(env: dict[str, str], stack: Stack, repo: Path) -> str:
    project = ok_json(env, "projects", "create", f"app-{uuid.uuid4().hex[:6]}")
    with stack.client(stack.live_key) as http:
        patched = http.patch(
            f"/v1/projects/{project['id']}",
            json={
                "build": {
                    "repo_url": repo.as_uri(),
                    "build_command": apps.BUILD_COMMAND,
                    "start_command": apps.START_COMMAND,
                    "health_check_path": apps.HEALTH_PATH,
                }
            },
        )
        assert patched.status_code == 200, patched.text
    return project["id"]


def test_deploy_follows_the_build_to_ready_then_logs_follow_and_rollback(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    repo = apps.make_repo(tmp_path / "app")
    project = _project_with_repo(env, stack, repo)

    deployed = run(env, "deploy", project, "--ref", "main", timeout=240)
    assert deployed.returncode == 0, deployed.stderr
    assert "building v1" in deployed.stdout and "warming the cache" in deployed.stdout
    assert "is ready" in deployed.stderr
    first = ok_json(env, "deployments", "list", "--project", project)[0]
    assert first["status"] == "ready" and first["url"]

    # `logs --follow` goes on with the running app's lines: ask the app for one.
    follower = subprocess.Popen(
        stratus_command("logs", first["id"], "--follow"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(follower.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        wait_until(
            lambda: any("build done" in line for line in seen), timeout=30, message="the build's lines"
        )

        def pinged() -> bool:
            httpx.get(f"{first['url']}/ping", timeout=5)
            return any(line.strip() == "ping" for line in seen)

        wait_until(pinged, timeout=30, message="the app's runtime line")
    finally:
        follower.terminate()
        follower.wait(10)

    apps.commit_version(repo, "v2")
    assert run(env, "deploy", project, "--ref", "main", timeout=240).returncode == 0
    back = run(env, "rollback", first["id"], "--json", timeout=240)
    assert back.returncode == 0, back.stderr
    rolled = json.loads(back.stdout)
    assert rolled["status"] == "ready" and rolled["id"] != first["id"]
    assert "v1" in httpx.get(rolled["url"], timeout=5).text


def test_a_failing_build_exits_3_with_its_log(stack: Stack, env: dict[str, str], tmp_path: Path) -> None:
    repo = apps.make_repo(tmp_path / "app")
    apps.commit_failing_build(repo)
    project = _project_with_repo(env, stack, repo)
    failed = run(env, "deploy", project, "--ref", "main", timeout=240)
    assert failed.returncode == 3, failed.stderr
    assert "error: something broke" in failed.stdout
    assert "failed" in failed.stderr


class Receiver:
    """A webhook receiver that verifies every request as a real one would."""

    def __init__(self, secret: str | None = None) -> None:
        self.verified: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.refused = 0
        self.hook = Webhook(secret) if secret else None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    assert receiver.hook is not None
                    receiver.verified.append(receiver.hook.verify(body, dict(self.headers)))
                    receiver.ids.append(self.headers["webhook-id"])
                    self.send_response(204)
                except Exception:
                    receiver.refused += 1
                    self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_listen_forwards_each_event_signed(env: dict[str, str]) -> None:
    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="
    receiver = Receiver(secret)
    listener = subprocess.Popen(
        stratus_command(
            "listen", "--forward-to", receiver.url, "--secret", secret, "--event", "project.created"
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready: list[str] = []
        threading.Thread(target=lambda: ready.extend(iter(listener.stderr.readline, "")), daemon=True).start()  # type: ignore[union-attr]
        wait_until(lambda: any("Ready" in line for line in ready), timeout=30, message="listen to start")
        made = [
            ok_json(env, "projects", "create", f"heard-{i}-{uuid.uuid4().hex[:4]}")["id"] for i in range(3)
        ]
        wait_until(
            lambda: set(made) <= {e["data"]["id"] for e in receiver.verified},
            timeout=30,
            message="the forwarded events",
        )
        assert receiver.refused == 0
        assert {e["type"] for e in receiver.verified} == {"project.created"}
    finally:
        listener.terminate()
        listener.wait(10)
        receiver.server.shutdown()


def test_webhooks_create_deliveries_redeliver(env: dict[str, str]) -> None:
    receiver = Receiver()
    try:
        made = ok_json(env, "webhooks", "create", receiver.url, "--event", "project.created")
        assert made["secret"].startswith("whsec_")
        receiver.hook = Webhook(made["secret"])
        assert made["id"] in {w["id"] for w in ok_json(env, "webhooks", "list")}
        ok_json(env, "projects", "create", f"hooked-{uuid.uuid4().hex[:6]}")
        [delivered] = wait_until(
            lambda: ok_json(env, "webhooks", "deliveries", made["id"], "--status", "succeeded"),
            timeout=30,
            message="a delivery",
        )
        table = run(env, "webhooks", "deliveries", made["id"])
        assert table.returncode == 0 and delivered["id"] in table.stdout and "succeeded" in table.stdout
        again = ok_json(env, "webhooks", "redeliver", made["id"], "--delivery", delivered["id"])
        assert [d["id"] for d in again] == [delivered["id"]]
        wait_until(
            lambda: receiver.ids.count(delivered["event_id"]) == 2, timeout=30, message="the redelivery"
        )
        assert receiver.refused == 0
        assert run(env, "webhooks", "redeliver", made["id"]).returncode == 2  # nothing named
    finally:
        receiver.server.shutdown()


def test_metrics_show_the_requests_made(env: dict[str, str]) -> None:
    for _ in range(3):
        assert run(env, "whoami").returncode == 0

    def counted() -> bool:
        result = ok_json(env, "metrics", "requests", "--range", "1h", "--group-by", "route")
        return any(
            s["labels"].get("route") == "/v1/me" and any(p[1] for p in s["points"]) for s in result["series"]
        )

    wait_until(counted, timeout=60, message="/v1/me in the metrics")
    table = run(env, "metrics", "requests", "--range", "1h", "--group-by", "route")
    assert table.returncode == 0 and "/v1/me" in table.stdout
