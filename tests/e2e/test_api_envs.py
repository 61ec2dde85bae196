"""Environments and secrets through the running stack: every route, validation, redaction in every
answer, event and log line, audited reveal, tenant and key isolation, dotenv import and export
(over HTTP and with `stratus env pull|push`), and no plaintext anywhere under the data dir."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
from dotenv import dotenv_values

from stratus_testing import Stack, stratus_command, wait_until

from .conftest import problem


def unique(prefix: str = "env") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def secret_value() -> str:
    """A value that appears nowhere by chance: what the plaintext searches look for."""
    return f"sv-{uuid.uuid4().hex}{uuid.uuid4().hex}"


def new_project(client: httpx.Client) -> dict[str, Any]:
    made = client.post("/v1/projects", json={"name": unique("prj")})
    assert made.status_code == 201, made.text
    return made.json()["data"]


def envs_of(client: httpx.Client, project_id: str) -> dict[str, dict[str, Any]]:
    listed = client.get(f"/v1/projects/{project_id}/envs")
    assert listed.status_code == 200, listed.text
    return {e["name"]: e for e in listed.json()["data"]}


def production(client: httpx.Client) -> dict[str, Any]:
    return envs_of(client, new_project(client)["id"])["production"]


def put_secret(client: httpx.Client, env_id: str, key: str, value: str) -> dict[str, Any]:
    made = client.post(f"/v1/envs/{env_id}/vars", json={"key": key, "value": value, "secret": True})
    assert made.status_code == 201, made.text
    return made.json()["data"]


@contextmanager
def key_client(stack: Stack, admin: httpx.Client, **body: Any) -> Iterator[httpx.Client]:
    made = admin.post("/v1/keys", json={"name": unique("key"), "scopes": ["read", "write", "admin"], **body})
    assert made.status_code == 201, made.text
    with stack.client(made.json()["data"]["secret"]) as client:
        yield client


def stream_texts(stack: Stack) -> list[str]:
    """Every message on the EVENTS stream, as text."""

    async def read() -> list[str]:
        nc = await nats.connect(stack.nats_url.split(","))
        try:
            js = nc.jetstream()
            info = await js.stream_info("EVENTS")
            texts = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    texts.append((await js.get_msg("EVENTS", seq)).data.decode())
                except nats.js.errors.NotFoundError:
                    continue
            return texts
        finally:
            await nc.close()

    return asyncio.run(read())


def events_of(stack: Stack, env_id: str) -> list[dict[str, Any]]:
    found = []
    for text in stream_texts(stack):
        event = json.loads(text)
        if env_id in (event["data"].get("id"), event["data"].get("environment_id")):
            found.append(event)
    return found


# --- every route --------------------------------------------------------------------------------


def test_every_route_round_trips(live: httpx.Client) -> None:
    project = new_project(live)
    base = f"/v1/projects/{project['id']}/envs"
    listed = live.get(base).json()["data"]
    assert [(e["name"], e["object"], e["config_version"]) for e in listed] == [
        ("production", "environment", 1),
        ("staging", "environment", 1),
    ]
    made = live.post(base, json={"name": "preview-1", "branch": "feat/x", "auto_deploy": True})
    assert made.status_code == 201, made.text
    env = made.json()["data"]
    path = f"/v1/envs/{env['id']}"
    assert made.headers["location"] == path and made.headers["etag"] == '"1"'
    got = live.get(path)
    assert got.json()["data"] == env and got.headers["etag"] == '"1"'
    replaced = live.put(path, json={"name": "preview-2", "description": "PR 2"}, headers={"If-Match": '"1"'})
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["data"]["branch"], replaced.json()["data"]["auto_deploy"]) == (None, False)
    problem(live.put(path, json={"name": "x"}, headers={"If-Match": '"1"'}), 412, "precondition_failed")

    one = live.post(f"{path}/vars", json={"key": "DATABASE_URL", "value": "postgres://db/app"})
    assert one.status_code == 201 and one.headers["location"] == f"{path}/versions/2"
    assert (one.json()["data"]["number"], one.json()["data"]["changed"]) == (2, ["DATABASE_URL"])
    same = live.post(f"{path}/vars", json={"key": "DATABASE_URL", "value": "postgres://db/app"})
    assert same.status_code == 200 and same.json()["data"]["new"] is False
    many = live.post(
        f"{path}/vars",
        json={"vars": [{"key": "A", "value": "1"}, {"key": "TOKEN", "value": "t", "secret": True}]},
    )
    assert many.status_code == 201 and many.json()["data"]["number"] == 3
    patched = live.patch(f"{path}/vars", json={"A": None, "B": "2", "C": {"value": "3", "secret": True}})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["data"]["changed"], patched.json()["data"]["removed"]) == (["B", "C"], ["A"])
    listed_vars = live.get(f"{path}/vars")
    assert listed_vars.status_code == 200 and listed_vars.json()["meta"]["config_version"] == 4
    assert [(v["key"], v["value"], v["redacted"]) for v in listed_vars.json()["data"]] == [
        ("B", "2", False),
        ("C", None, True),
        ("DATABASE_URL", "postgres://db/app", False),
        ("TOKEN", None, True),
    ]
    deleted = live.delete(f"{path}/vars/B")
    assert deleted.status_code == 200 and deleted.json()["data"]["removed"] == ["B"]
    problem(live.delete(f"{path}/vars/B"), 404, "env_var_not_found")

    versions = live.get(f"{path}/versions").json()["data"]
    assert [v["number"] for v in versions] == [5, 4, 3, 2, 1]
    v2 = live.get(f"{path}/versions/2").json()["data"]
    assert [(v["key"], v["value"]) for v in v2["vars"]] == [("DATABASE_URL", "postgres://db/app")]
    problem(live.get(f"{path}/versions/99"), 404, "config_version_not_found")

    exported = live.get(f"{path}/dotenv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/plain")
    assert "DATABASE_URL=postgres://db/app" in exported.text
    imported = live.put(f"{path}/dotenv", content=b"IMPORTED='yes'\n", headers={"content-type": "text/plain"})
    assert imported.status_code == 200 and imported.json()["data"]["changed"] == ["IMPORTED"]

    gone = live.delete(path)
    assert gone.status_code == 200 and gone.json()["data"]["deleted"] is True
    problem(live.get(path), 404, "environment_not_found")
    assert "preview-2" not in envs_of(live, project["id"])


def test_bad_input_is_a_clear_422(live: httpx.Client) -> None:
    path = f"/v1/envs/{production(live)['id']}"
    cases = [
        ("POST", "/vars", {"key": "1BAD", "value": "x"}, "key"),
        ("POST", "/vars", {"key": "K" * 257, "value": "x"}, "key"),
        ("POST", "/vars", {"key": "K", "value": "é" * 40_000}, "value"),
        ("POST", "/vars", {"key": "K"}, "value"),
        ("POST", "/vars", {"key": "K", "value": "x", "vars": [{"key": "L", "value": "y"}]}, "vars"),
        ("POST", "/vars", {"key": "K", "value": "x", "id": "nope"}, "id"),
        ("POST", "/vars", {"vars": [{"key": "K", "value": "1"}, {"key": "K", "value": "2"}]}, "vars[1].key"),
        ("POST", "/vars", {"vars": [{"key": f"K{i}", "value": "x"} for i in range(501)]}, "vars"),
        ("PUT", "", {"name": "Not A Label"}, "name"),
    ]
    for method, suffix, body, field in cases:
        errors = problem(live.request(method, path + suffix, json=body), 422, "validation_failed")["errors"]
        assert any(field in e["field"] for e in errors), (body, errors)
    errors = problem(live.patch(f"{path}/vars", json={"bad-key": "x", "OK": 5}), 422, "validation_failed")[
        "errors"
    ]
    assert [e["field"] for e in errors] == ["bad-key", "OK"]
    too_many = {f"K{i}": "x" for i in range(501)}
    assert "500" in problem(live.patch(f"{path}/vars", json=too_many), 422, "validation_failed")["detail"]
    problem(
        live.patch(f"{path}/vars", content=b"{", headers={"content-type": "application/json"}),
        400,
        "malformed_json",
    )
    problem(live.delete(f"{path}/vars/bad-key"), 422, "validation_failed")
    bad_file = live.put(f"{path}/dotenv", content=b"OK=1\nNOPE\n", headers={"content-type": "text/plain"})
    assert problem(bad_file, 422, "validation_failed")["errors"][0]["field"] == "line 2"
    problem(live.put(f"{path}/dotenv", json={"A": "1"}), 415, "unsupported_media_type")
    problem(
        live.post(f"{path}/vars", content=b"A=1", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )


# --- redaction and reveal ----------------------------------------------------------------------


def test_secret_values_are_redacted_in_every_answer_event_and_log(stack: Stack, live: httpx.Client) -> None:
    value = secret_value()
    env = production(live)
    path = f"/v1/envs/{env['id']}"
    answers = [live.post(f"{path}/vars", json={"key": "API_SECRET", "value": value, "secret": True})]
    answers.append(live.patch(f"{path}/vars", json={"API_SECRET": value + "-2", "PLAIN": "p"}))
    answers += [
        live.get(f"{path}/vars"),
        live.get(f"{path}/versions"),
        live.get(f"{path}/versions/2"),
        live.get(f"{path}/versions/3"),
        live.get(f"{path}/dotenv"),
        live.get(path),
        live.delete(f"{path}/vars/PLAIN"),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        assert value not in answer.text
    item = next(v for v in answers[2].json()["data"] if v["key"] == "API_SECRET")
    assert (item["value"], item["secret"], item["redacted"], len(item["fingerprint"])) == (
        None,
        True,
        True,
        32,
    )
    assert "# stratus:redacted API_SECRET fingerprint=" in answers[6].text
    changed = wait_until(
        lambda: (
            len(found := [e for e in events_of(stack, env["id"]) if e["type"] == "env.vars.changed"]) == 3
            and found
        ),
        timeout=15,
        message="three env.vars.changed",
    )
    assert [(e["data"]["version"], e["data"]["changed"]) for e in changed] == [
        (2, ["API_SECRET"]),
        (3, ["API_SECRET", "PLAIN"]),
        (4, []),
    ]
    assert changed[0]["actor"]["request_id"] == answers[0].headers["x-request-id"]
    assert not any(value in text for text in stream_texts(stack))
    marker = live.get("/v1/me").headers["x-request-id"]
    wait_until(lambda: marker in stack.stderr_path.read_text(errors="replace"), timeout=10, message="logs")
    logs = stack.stderr_path.read_text(errors="replace") + stack.stdout_path.read_text(errors="replace")
    assert value not in logs


def test_reveal_needs_the_admin_scope(stack: Stack, live: httpx.Client) -> None:
    env = production(live)
    put_secret(live, env["id"], "TOKEN", secret_value())
    path = f"/v1/envs/{env['id']}"
    with key_client(stack, live, scopes=["read", "write"]) as writer:
        assert writer.get(f"{path}/vars").status_code == 200
        for route in (f"{path}/vars", f"{path}/versions/2", f"{path}/dotenv"):
            body = problem(writer.get(route, params={"reveal": "true"}), 403, "insufficient_scope")
            assert "`admin`" in body["detail"]
    assert not [e for e in events_of(stack, env["id"]) if e["type"] == "secret.revealed"]


def test_a_reveal_is_audited_with_actor_ip_and_request(stack: Stack, live: httpx.Client) -> None:
    value = secret_value()
    env = production(live)
    put_secret(live, env["id"], "DB_PASSWORD", value)
    request_id = unique("reveal")
    shown = live.get(
        f"/v1/envs/{env['id']}/vars", params={"reveal": "true"}, headers={"X-Request-Id": request_id}
    )
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert [(v["key"], v["value"], v["redacted"]) for v in shown.json()["data"]] == [
        ("DB_PASSWORD", value, False)
    ]
    exported = live.get(f"/v1/envs/{env['id']}/dotenv", params={"reveal": "true"})
    assert dotenv_values(stream=io.StringIO(exported.text)) == {"DB_PASSWORD": value}

    def audited() -> list[dict[str, Any]]:
        response = live.get("/v1/audit-events", params={"action": "secret.revealed", "resource": env["id"]})
        return response.json()["data"]

    events = wait_until(lambda: len(found := audited()) == 2 and found, timeout=15, message="two reveals")
    dotenv_reveal, vars_reveal = events  # newest first
    me = live.get("/v1/me").json()["data"]
    assert vars_reveal["actor"] == {
        "key_id": me["key_id"],
        "member_id": None,
        "token_id": None,
        "ip": "127.0.0.1",
        "request_id": request_id,
    }
    assert vars_reveal["resource"] == {"type": "environment", "id": env["id"]}
    assert (vars_reveal["data"]["keys"], vars_reveal["data"]["via"]) == (["DB_PASSWORD"], "vars")
    assert dotenv_reveal["data"]["via"] == "dotenv"
    assert value not in json.dumps(events)


# --- isolation ---------------------------------------------------------------------------------


def test_other_tenants_modes_and_restricted_keys_get_404(
    stack: Stack, live: httpx.Client, test_mode: httpx.Client
) -> None:
    project = new_project(live)
    by_name = envs_of(live, project["id"])
    prod, staging = by_name["production"], by_name["staging"]
    put_secret(live, prod["id"], "S", secret_value())
    made = stack.cli("accounts", "create", unique("tenant"), "--json")
    assert made.returncode == 0, made.stderr
    other_key = json.loads(made.stdout)["keys"]["live"]
    other_project = new_project(live)

    def refused(client: httpx.Client, env_id: str) -> None:
        base = f"/v1/envs/{env_id}"
        for method, route, kwargs in [
            ("GET", base, {}),
            ("PUT", base, {"json": {"name": "pwned"}}),
            ("DELETE", base, {}),
            ("GET", f"{base}/vars", {}),
            ("GET", f"{base}/vars", {"params": {"reveal": "true"}}),
            ("POST", f"{base}/vars", {"json": {"key": "X", "value": "y"}}),
            ("PATCH", f"{base}/vars", {"json": {"S": None}}),
            ("DELETE", f"{base}/vars/S", {}),
            ("GET", f"{base}/versions", {}),
            ("GET", f"{base}/versions/1", {}),
            ("GET", f"{base}/dotenv", {}),
            ("PUT", f"{base}/dotenv", {"content": b"X=1", "headers": {"content-type": "text/plain"}}),
        ]:
            problem(client.request(method, route, **kwargs), 404, "environment_not_found")

    with stack.client(other_key) as other_tenant:
        refused(other_tenant, prod["id"])
        problem(other_tenant.get(f"/v1/projects/{project['id']}/envs"), 404, "project_not_found")
    refused(test_mode, prod["id"])
    with key_client(stack, live, project_ids=[other_project["id"]]) as other_projects:
        refused(other_projects, prod["id"])
        problem(other_projects.get(f"/v1/projects/{project['id']}/envs"), 404, "project_not_found")
    with key_client(stack, live, environments=["staging"]) as staging_only:
        refused(staging_only, prod["id"])
        assert list(envs_of(staging_only, project["id"])) == ["staging"]
        assert staging_only.get(f"/v1/envs/{staging['id']}").status_code == 200
        problem(
            staging_only.post(f"/v1/projects/{project['id']}/envs", json={"name": "preview-1"}),
            403,
            "key_restricted",
        )
    assert live.get(f"/v1/envs/{prod['id']}").json()["data"]["name"] == "production"


# --- dotenv and the CLI ------------------------------------------------------------------------

TRICKY = {
    "PLAIN": "postgres://user@db:5432/app",
    "SPACES": "  two  spaces  ",
    "QUOTES": 'it\'s "quoted"',
    "BACKSLASH": "C:\\path\\to\\n",
    "MULTILINE": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
    "HASH": "a # not a comment",
    "DOLLAR": "${HOME}/$USER",
    "EMPTY": "",
    "UNICODE": "ünïcödé ✓",
}


def _cli(stack: Stack, *args: str, key: str | None = None) -> Any:
    env = {**stack.env, "STRATUS_API_KEY": key or stack.live_key}
    return subprocess.run(
        stratus_command(*args), env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_dotenv_push_and_pull_round_trip(stack: Stack, live: httpx.Client, tmp_path: Path) -> None:
    env = production(live)
    token = secret_value()
    source = tmp_path / "in.env"
    lines = [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in TRICKY.items()]
    source.write_text("# stratus:secret\nTOKEN=" + token + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    pushed = _cli(stack, "env", "push", env["id"], str(source))
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["changed"] == sorted([*TRICKY, "TOKEN"])

    revealed = tmp_path / "revealed.env"
    pulled = _cli(stack, "env", "pull", env["id"], "--reveal", "-o", str(revealed))
    assert pulled.returncode == 0, pulled.stderr
    assert stat.S_IMODE(revealed.stat().st_mode) == 0o600
    assert dotenv_values(revealed, interpolate=False) == {**TRICKY, "TOKEN": token}

    redacted = _cli(stack, "env", "pull", env["id"])
    assert redacted.returncode == 0 and token not in redacted.stdout
    assert dotenv_values(stream=io.StringIO(redacted.stdout), interpolate=False) == TRICKY
    # The redacted export pushed back with prune keeps the secret it could not show.
    back = tmp_path / "back.env"
    back.write_text(redacted.stdout.replace("PLAIN=", "# PLAIN=") + "ADDED=1\n")
    pruned = _cli(stack, "env", "push", env["id"], str(back), "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert (json.loads(pruned.stdout)["changed"], json.loads(pruned.stdout)["removed"]) == (
        ["ADDED"],
        ["PLAIN"],
    )
    items = live.get(f"/v1/envs/{env['id']}/vars", params={"reveal": "true", "limit": 100}).json()["data"]
    assert {v["key"]: v["value"] for v in items}["TOKEN"] == token
    assert {v["key"] for v in items if v["secret"]} == {"TOKEN"}
    # A revealed export pushed back keeps the secret flag; the same file twice changes nothing.
    again = _cli(stack, "env", "push", env["id"], str(revealed))
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] == ["PLAIN"]
    twice = _cli(stack, "env", "push", env["id"], str(revealed))
    assert twice.returncode == 0 and json.loads(twice.stdout)["new"] is False
    refused = _cli(stack, "env", "pull", "env_" + "a" * 26)
    assert refused.returncode == 1 and "environment_not_found" in refused.stderr


# --- at rest -----------------------------------------------------------------------------------


def test_no_plaintext_secret_under_the_data_dir(stack: Stack, live: httpx.Client) -> None:
    value = secret_value()
    env = production(live)
    put_secret(live, env["id"], "AT_REST", value)
    shown = live.get(f"/v1/envs/{env['id']}/vars", params={"reveal": "true"}).json()["data"]
    assert shown[0]["value"] == value
    live.get(f"/v1/envs/{env['id']}/dotenv", params={"reveal": "true"})
    # Wait until the reveal went all the way: relay → stream → audit view.
    wait_until(
        lambda: live.get(
            "/v1/audit-events", params={"action": "secret.revealed", "resource": env["id"]}
        ).json()["data"],
        timeout=15,
        message="the reveal in the audit log",
    )
    needles = [value.encode(), value.encode().hex().encode(), value.encode("utf-16-le")]
    files = [p for p in stack.data_dir.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") for p in files)  # SQLite's write-ahead logs are searched too
    for path in files:
        content = path.read_bytes()
        assert not any(n in content for n in needles), path
    key_file = stack.data_dir / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    master = key_file.read_text().strip()
    assert master not in stack.stderr_path.read_text(errors="replace")
    assert master not in stack.stdout_path.read_text(errors="replace")


def test_writes_with_an_idempotency_key_apply_once(live: httpx.Client) -> None:
    project = new_project(live)
    key = {"Idempotency-Key": unique("idem")}
    made = [
        live.post(f"/v1/projects/{project['id']}/envs", json={"name": "preview-7"}, headers=key) for _ in "ab"
    ]
    assert [m.status_code for m in made] == [201, 201] and made[0].json()["data"] == made[1].json()["data"]
    assert made[1].headers.get("idempotent-replayed") == "true"
    assert list(envs_of(live, project["id"])) == ["production", "staging", "preview-7"]
    env_id = made[0].json()["data"]["id"]
    key = {"Idempotency-Key": unique("idem")}
    body = {"key": "TOKEN", "value": secret_value(), "secret": True}
    answers = [live.post(f"/v1/envs/{env_id}/vars", json=body, headers=key) for _ in "ab"]
    assert [a.json()["data"]["number"] for a in answers] == [2, 2]
    assert [v["number"] for v in live.get(f"/v1/envs/{env_id}/versions").json()["data"]] == [2, 1]
    assert body["value"] not in answers[1].text
