"""The access matrix, tried as an attacker would: every `/v1` route from the OpenAPI spec ×
every scope, tokens on key-only routes, another tenant's ids, the other mode's ids, and a key
restricted to one project. Routes come from the spec, so a new route is covered the day it lands."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from itertools import combinations

import httpx
import pytest

from stratus_testing import Stack

ADMIN_ONLY = re.compile(
    r"^/v1/(keys|members|audit-events)|^/v1/projects/\{project_id\}/members/\{member_id\}$"
)
DUMMY = {
    "project_id": "prj_" + "a" * 26,
    "key_id": "key_" + "a" * 26,
    "member_id": "mem_" + "a" * 26,
    "env_id": "env_" + "a" * 26,
    "key": "SOME_KEY",  # a variable's key
    "number": "1",  # a config version
    "deployment_id": "dep_" + "a" * 26,
    "event_id": "evt_" + "a" * 26,
    "name": "no.such_type",  # an event type's name
    "webhook_id": "whk_" + "a" * 26,
    "delivery_id": "dlv_" + "a" * 26,
}


@dataclass
class Tenant:
    admin: str
    test_admin: str
    ids: dict[str, str]  # real ids of this tenant's live resources


def _client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, headers=stack.auth(key), trust_env=False, timeout=10)


@pytest.fixture(scope="module")
def operations(stack: Stack) -> list[tuple[str, str, str, bool]]:
    spec = httpx.get(f"{stack.base_url}/openapi.json", trust_env=False).json()
    ops = [
        (method.upper(), path, op["x-required-scope"], op["x-tokens-allowed"])
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if path.startswith("/v1/")
    ]
    assert len(ops) >= 20
    for method, path, scope, _ in ops:
        if ADMIN_ONLY.match(path) and not (path.endswith("{member_id}") and method == "GET"):
            assert scope == "admin", (method, path)
    return ops


@pytest.fixture(scope="module")
def tenant_a(stack: Stack) -> Tenant:
    with _client(stack, stack.live_key) as a:
        suffix = uuid.uuid4().hex[:8]
        project = a.post("/v1/projects", json={"name": f"matrix-{suffix}"}).json()["data"]["id"]
        member = a.post("/v1/members", json={"email": f"m-{suffix}@example.com", "name": "M"}).json()["data"][
            "id"
        ]
        assert (
            a.put(f"/v1/projects/{project}/members/{member}", json={"role": "developer"}).status_code == 200
        )
        key = a.post("/v1/keys", json={"name": "target", "scopes": ["read"]}).json()["data"]["id"]
        env = a.get(f"/v1/projects/{project}/envs").json()["data"][0]["id"]
        assert a.post(f"/v1/envs/{env}/vars", json={"key": "SOME_KEY", "value": "v"}).status_code == 201
        # A deployment of a repository that is not there: it fails at once, and it exists.
        build = {"repo_url": f"/nonexistent/{suffix}", "start_command": "true"}
        assert a.patch(f"/v1/projects/{project}", json={"build": build}).status_code == 200
        made = a.post("/v1/deployments", json={"project": project, "env": "staging"})
        assert made.status_code == 202, made.text
        deployment = made.json()["data"]["id"]
        deadline = time.monotonic() + 20
        while not (feed := a.get("/v1/events", params={"project": project}).json()["data"]):
            assert time.monotonic() < deadline, "the project's events never reached the feed"
            time.sleep(0.05)
        event = feed[-1]["id"]
        hook = a.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/", "events": ["*"]})
        assert hook.status_code == 201, hook.text
        webhook = hook.json()["data"]["id"]
        a.post("/v1/projects", json={"name": f"matrix-hooked-{suffix}"})  # an event it gets
        deadline = time.monotonic() + 20
        while not (sent := a.get(f"/v1/webhooks/{webhook}/deliveries").json()["data"]):
            assert time.monotonic() < deadline, "the endpoint never got a delivery"
            time.sleep(0.05)
        delivery = sent[0]["id"]
    ids = {
        "project_id": project,
        "member_id": member,
        "key_id": key,
        "env_id": env,
        "deployment_id": deployment,
        "event_id": event,
        "webhook_id": webhook,
        "delivery_id": delivery,
    }
    return Tenant(stack.live_key, stack.test_key, ids)


@pytest.fixture(scope="module")
def tenant_b(stack: Stack) -> Tenant:
    made = stack.cli("accounts", "create", f"tenant-b-{uuid.uuid4().hex[:6]}", "--json")
    assert made.returncode == 0, made.stderr
    keys = json.loads(made.stdout)["keys"]
    with _client(stack, keys["live"]) as b:
        project = b.post("/v1/projects", json={"name": "b-project"}).json()["data"]["id"]
    return Tenant(keys["live"], keys["test"], {"project_id": project})


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def _send(client: httpx.Client, method: str, path: str, body: dict | None = None) -> httpx.Response:
    if method == "GET":
        return client.get(path)
    if path.endswith("/dotenv"):  # the one text/plain body
        return client.request(method, path, content=b"PWNED=x\n", headers={"content-type": "text/plain"})
    return client.request(method, path, json=body if body is not None else {})


SCOPE_SETS = [list(c) for n in (1, 2) for c in combinations(["read", "write", "admin"], n)]


@pytest.mark.parametrize("scopes", SCOPE_SETS, ids=["+".join(s) for s in SCOPE_SETS])
def test_every_route_enforces_its_scope(stack: Stack, operations: list, scopes: list[str]) -> None:
    with _client(stack, stack.live_key) as admin:
        secret = admin.post("/v1/keys", json={"name": "matrix", "scopes": scopes}).json()["data"]["secret"]
    with _client(stack, secret) as client:
        for method, path, needed, _ in operations:
            response = _send(client, method, _fill(path, DUMMY))
            if needed in scopes:
                assert response.status_code not in (401, 403), (method, path, scopes, response.text)
            else:
                assert response.status_code == 403, (method, path, scopes, response.text)
                assert response.json()["code"] == "insufficient_scope"
                assert f"`{needed}`" in response.json()["detail"]


def test_tokens_are_refused_on_key_only_routes(stack: Stack, operations: list) -> None:
    with _client(stack, stack.live_key) as admin:
        token = admin.post("/v1/tokens", json={"ttl_seconds": 120}).json()["data"]["token"]
    with _client(stack, token) as client:
        for method, path, _, tokens_allowed in operations:
            response = _send(client, method, _fill(path, DUMMY))
            if tokens_allowed:
                assert response.status_code not in (401, 403), (method, path, response.text)
            else:
                assert (response.status_code, response.json()["code"]) == (403, "token_not_allowed"), (
                    method,
                    path,
                )


def hostile_body(method: str, path: str) -> dict:
    """A valid body for the route, so that only the ownership check can stop it."""
    if path.endswith("/envs") or path == "/v1/envs/{env_id}":
        return {"name": "pwned"}
    if path.endswith("/vars"):
        return {"PWNED": "x"} if method == "PATCH" else {"key": "PWNED", "value": "x"}
    if method == "PATCH":
        return {"name": "pwned"} if path.startswith("/v1/keys") else {"description": "pwned"}
    if method == "PUT":
        return {"role": "owner"}
    if path.endswith("/redeliver"):
        return {"event_id": "evt_" + "b" * 26}
    if path.endswith("/rotate-secret"):
        return {"grace_seconds": 0}
    if method == "POST":
        return {"overlap_seconds": 0}
    return {}


@pytest.mark.parametrize("who", ["other tenant", "test mode"])
def test_foreign_ids_are_404_and_untouched(
    stack: Stack, operations: list, tenant_a: Tenant, tenant_b: Tenant, who: str
) -> None:
    intruder = tenant_b.admin if who == "other tenant" else tenant_a.test_admin
    targets = [(m, p) for m, p, _, _ in operations if "{" in p]
    assert targets
    with _client(stack, intruder) as client:
        for method, path in targets:
            ids = {**DUMMY, **tenant_a.ids}
            response = _send(client, method, _fill(path, ids), hostile_body(method, path))
            assert response.status_code == 404, (method, path, response.text)
            # Indistinguishable from an id that exists nowhere: nothing reveals that it is real.
            unknown = _send(client, method, _fill(path, DUMMY), hostile_body(method, path))
            masked = response.json()["detail"]
            for name, real in tenant_a.ids.items():
                masked = masked.replace(real, DUMMY[name])
            assert (unknown.status_code, unknown.json()["code"], unknown.json()["detail"]) == (
                404,
                response.json()["code"],
                masked,
            ), (method, path)
        for listing in ("/v1/projects", "/v1/keys", "/v1/members", "/v1/audit-events"):
            text = client.get(listing, params={"limit": 100}).text
            assert not any(real in text for real in tenant_a.ids.values()), listing
    with _client(stack, tenant_a.admin) as owner:
        project = owner.get(f"/v1/projects/{tenant_a.ids['project_id']}")
        assert project.status_code == 200 and project.json()["data"]["description"] != "pwned"
        key = owner.get(f"/v1/keys/{tenant_a.ids['key_id']}").json()["data"]
        assert key["revoked"] is None and key["name"] == "target"
        assert owner.get(f"/v1/members/{tenant_a.ids['member_id']}").status_code == 200
        env = owner.get(f"/v1/envs/{tenant_a.ids['env_id']}").json()["data"]
        assert env["name"] == "production" and env["config_version"] == 2
        deployments = owner.get("/v1/deployments", params={"project": tenant_a.ids["project_id"]}).json()[
            "data"
        ]
        assert [d["id"] for d in deployments] == [tenant_a.ids["deployment_id"]]  # no rollback made
        assert deployments[0]["status"] != "canceled"
        hook = owner.get(f"/v1/webhooks/{tenant_a.ids['webhook_id']}").json()["data"]
        assert (hook["description"], hook["version"]) == ("", 1)
        team = owner.get(f"/v1/projects/{tenant_a.ids['project_id']}/members").json()["data"]
        assert [(m["id"], m["role"]) for m in team] == [(tenant_a.ids["member_id"], "developer")]


def test_project_restricted_key_sees_only_its_projects(stack: Stack, tenant_a: Tenant) -> None:
    with _client(stack, stack.live_key) as admin:
        allowed = admin.post("/v1/projects", json={"name": f"allowed-{uuid.uuid4().hex[:6]}"}).json()["data"][
            "id"
        ]
        made = admin.post(
            "/v1/keys", json={"name": "narrow", "scopes": ["read", "write"], "project_ids": [allowed]}
        )
        secret = made.json()["data"]["secret"]
    with _client(stack, secret) as narrow:
        assert narrow.get(f"/v1/projects/{allowed}").status_code == 200
        for method in ("GET", "PATCH", "DELETE"):
            response = _send(
                narrow, method, f"/v1/projects/{tenant_a.ids['project_id']}", {"description": "x"}
            )
            assert response.status_code == 404, (method, response.text)
        assert [p["id"] for p in narrow.get("/v1/projects", params={"limit": 100}).json()["data"]] == [
            allowed
        ]
        created = narrow.post("/v1/projects", json={"name": "sneaky"})
        assert (created.status_code, created.json()["code"]) == (403, "key_restricted")
        # A token from it cannot name another project.
        widened = narrow.post("/v1/tokens", json={"project_ids": [tenant_a.ids["project_id"]]})
        assert (widened.status_code, widened.json()["code"]) == (403, "token_widening")
