"""Build settings and what projects does for deployments, through the running stack: a project's
build settings (PATCH sets and clears them, validation, ETags, events), environment overrides
(POST, PUT, PATCH), `ResolveDeployTarget` and `GetRuntimeVariables` on the bus (effective
settings, access checks, decryption and its audit record), and the consumer that records which
deployment serves an environment from `deployment.succeeded` / `rolled_back` events."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import pytest

from stratus_bus import Bus, RemoteError
from stratus_contracts import deployments
from stratus_contracts import envs as c
from stratus_contracts.auth import Caller
from stratus_contracts.deployments import DeployTarget
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Actor, EventType
from stratus_contracts.ids import new_id
from stratus_testing import Stack, wait_until

from .conftest import problem

NOWHERE = {"repo_url": None, "build_command": None, "start_command": None, "health_check_path": None}
REPO = "https://github.com/acme/web.git"


def unique(prefix: str = "bs") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_project(client: httpx.Client) -> dict[str, Any]:
    made = client.post("/v1/projects", json={"name": unique("prj")})
    assert made.status_code == 201, made.text
    return made.json()["data"]


def envs_of(client: httpx.Client, project_id: str) -> dict[str, dict[str, Any]]:
    listed = client.get(f"/v1/projects/{project_id}/envs")
    assert listed.status_code == 200, listed.text
    return {e["name"]: e for e in listed.json()["data"]}


def patch_build(client: httpx.Client, project_id: str, **build: Any) -> httpx.Response:
    return client.patch(f"/v1/projects/{project_id}", json={"build": build})


@contextmanager
def key_client(stack: Stack, admin: httpx.Client, **body: Any) -> Iterator[httpx.Client]:
    made = admin.post("/v1/keys", json={"name": unique("key"), "scopes": ["read", "write", "admin"], **body})
    assert made.status_code == 201, made.text
    with stack.client(made.json()["data"]["secret"]) as client:
        yield client


def caller_of(client: httpx.Client) -> Caller:
    """The Caller the gateway makes of this client's credential (what a deployments route sends)."""
    me = client.get("/v1/me").json()["data"]
    return Caller(
        account_id=me["account"],
        mode=me["mode"],
        key_id=me["key_id"],
        scopes=tuple(me["scopes"]),
        project_ids=None if me["project_ids"] is None else tuple(me["project_ids"]),
        environments=None if me["environments"] is None else tuple(me["environments"]),
        member_id=me["member_id"],
    )


def call(stack: Stack, message: Any) -> Any:
    """Send one message over the stack's bus and return its result (or raise RemoteError)."""

    async def send() -> Any:
        bus = await Bus.connect(stack.nats_url, name="test-build-settings")
        try:
            return await bus.call(message)
        finally:
            await bus.drain()

    return asyncio.run(send())


def refused(stack: Stack, message: Any) -> tuple[str, list[str]]:
    with pytest.raises(RemoteError) as info:
        call(stack, message)
    return info.value.error.code, [e.field for e in info.value.error.errors]


def events_on(stack: Stack, subject: str) -> list[dict[str, Any]]:
    """Every event on the EVENTS stream with this subject, oldest first."""

    async def read() -> list[dict[str, Any]]:
        nc = await nats.connect(stack.nats_url.split(","))
        try:
            js, seq, found = nc.jetstream(), 1, []
            while True:
                try:
                    msg = await js.get_msg("EVENTS", seq, subject=subject, next=True)
                except nats.js.errors.NotFoundError:
                    return found
                found.append(json.loads(msg.data))
                seq = msg.seq + 1
        finally:
            await nc.close()

    return asyncio.run(read())


# --- project build settings ---------------------------------------------------------------------


def test_patch_sets_and_clears_build_settings(stack: Stack, live: httpx.Client) -> None:
    project = new_project(live)
    path = f"/v1/projects/{project['id']}"
    assert project["build"] == NOWHERE  # every key, null when unset
    set_two = live.patch(
        path,
        json={"build": {"repo_url": REPO, "start_command": "npm start"}},
        headers={"If-Match": '"1"'},
    )
    assert set_two.status_code == 200, set_two.text
    assert set_two.headers["etag"] == '"2"'
    assert set_two.json()["data"]["build"] == {**NOWHERE, "repo_url": REPO, "start_command": "npm start"}
    assert patch_build(live, project["id"], build_command="make").headers["etag"] == '"3"'
    stale = live.patch(path, json={"build": {"build_command": "x"}}, headers={"If-Match": '"2"'})
    problem(stale, 412, "precondition_failed")
    # Omitted settings stay, null clears one; other fields leave the build settings alone.
    cleared = patch_build(live, project["id"], start_command=None, health_check_path="/healthz")
    expected = {**NOWHERE, "repo_url": REPO, "build_command": "make", "health_check_path": "/healthz"}
    assert cleared.json()["data"]["build"] == expected
    renamed = live.patch(path, json={"description": "web app"}).json()["data"]
    assert renamed["build"] == expected
    same = patch_build(live, project["id"], repo_url=REPO)  # no change: no new version
    assert same.headers["etag"] == f'"{renamed["version"]}"'
    got = live.get(path)
    assert got.json()["data"] == same.json()["data"] and got.headers["etag"] == same.headers["etag"]
    listed = live.get("/v1/projects", params={"name": project["name"]}).json()["data"]
    assert listed == [got.json()["data"]]
    wiped = live.patch(path, json={"build": None}).json()["data"]
    assert wiped["build"] == NOWHERE
    assert wiped["version"] == 6

    # Each change is a project.updated with the new state (every key, as the API shows it).
    def builds() -> list[dict[str, Any]]:
        subject = f"evt.live.{stack.account_id}.project.updated"
        return [e["data"]["build"] for e in events_on(stack, subject) if e["data"]["id"] == project["id"]]

    published = wait_until(lambda: len(found := builds()) == 5 and found, timeout=10)
    assert published == [
        {**NOWHERE, "repo_url": REPO, "start_command": "npm start"},
        {**NOWHERE, "repo_url": REPO, "start_command": "npm start", "build_command": "make"},
        {**NOWHERE, "repo_url": REPO, "build_command": "make", "health_check_path": "/healthz"},
        {
            **NOWHERE,
            "repo_url": REPO,
            "build_command": "make",
            "health_check_path": "/healthz",
        },  # the description
        NOWHERE,
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/web.git",
        "https://git.example.com:8443/group/sub/web",
        "ssh://git@github.com/acme/web.git",
        "git@github.com:acme/web.git",
        "file:///srv/git/web.git",
        "/srv/git/web",
    ],
)
def test_every_git_url_form_is_taken(live: httpx.Client, url: str) -> None:
    project = new_project(live)
    response = patch_build(live, project["id"], repo_url=url)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["build"]["repo_url"] == url


@pytest.mark.parametrize(
    ("build", "field", "says"),
    [
        ({"repo_url": "http://github.com/acme/web.git"}, "build.repo_url", "https"),
        ({"repo_url": "acme/web"}, "build.repo_url", "git URL"),
        ({"repo_url": "ext::sh -c touch% /tmp/pwned"}, "build.repo_url", "git URL"),
        ({"repo_url": "-oProxyCommand=touch:x"}, "build.repo_url", "git URL"),
        ({"repo_url": "ssh://-oProxyCommand=x/repo"}, "build.repo_url", "host"),
        ({"repo_url": "https://x:token@github.com/acme/web"}, "build.repo_url", "Credentials"),
        ({"repo_url": "https://github.com/acme\n/web"}, "build.repo_url", "control"),
        ({"repo_url": ""}, "build.repo_url", "empty"),
        ({"repo_url": "https://h/" + "r" * 2040}, "build.repo_url", "2048"),
        ({"health_check_path": "healthz"}, "build.health_check_path", "`/`"),
        ({"health_check_path": "/a\u0000b"}, "build.health_check_path", "control"),
        ({"health_check_path": "/" + "p" * 1024}, "build.health_check_path", "1024"),
        ({"start_command": "  "}, "build.start_command", "empty"),
        ({"build_command": "make\u0000"}, "build.build_command", "NUL"),
        ({"build_command": "m" * 4097}, "build.build_command", "4096"),
        ({"start_command": "s" * 4097}, "build.start_command", "4096"),
        ({"port": 8080}, "port", "Unknown field"),
    ],
)
def test_invalid_build_settings_are_a_422_naming_the_field(
    live: httpx.Client, build: dict[str, Any], field: str, says: str
) -> None:
    project = new_project(live)
    errors = problem(patch_build(live, project["id"], **build), 422, "validation_failed")["errors"]
    assert [e["field"] for e in errors] == [field], errors
    assert says in errors[0]["message"], errors
    assert live.get(f"/v1/projects/{project['id']}").json()["data"]["version"] == 1


def test_changing_build_settings_needs_the_developer_role(stack: Stack, live: httpx.Client) -> None:
    project = new_project(live)
    member = live.post("/v1/members", json={"email": f"{uuid.uuid4().hex[:12]}@example.com"}).json()
    path = f"/v1/projects/{project['id']}/members/{member['data']['id']}"
    assert live.put(path, json={"role": "viewer"}).status_code == 200
    with key_client(stack, live, member_id=member["data"]["id"]) as viewer:
        assert viewer.get(f"/v1/projects/{project['id']}").json()["data"]["build"] == NOWHERE
        problem(patch_build(viewer, project["id"], repo_url=REPO), 403, "insufficient_role")
        assert live.put(path, json={"role": "developer"}).status_code == 200
        assert patch_build(viewer, project["id"], repo_url=REPO).status_code == 200


# --- environment overrides --------------------------------------------------------------------


def test_environments_override_build_settings(stack: Stack, live: httpx.Client) -> None:
    project = new_project(live)
    made = live.post(
        f"/v1/projects/{project['id']}/envs",
        json={"name": "preview", "build": {"start_command": "npm run preview"}},
    )
    assert made.status_code == 201, made.text
    env = made.json()["data"]
    assert env["build"] == {**NOWHERE, "start_command": "npm run preview"}
    assert (env["url"], env["deployment_id"]) == (None, None)
    path = f"/v1/envs/{env['id']}"
    # PATCH: a setting given changes, an omitted one stays, null drops the override.
    patched = live.patch(
        path, json={"branch": "main", "build": {"health_check_path": "/up"}}, headers={"If-Match": '"1"'}
    )
    assert patched.status_code == 200 and patched.headers["etag"] == '"2"', patched.text
    assert patched.json()["data"]["build"] == {
        **NOWHERE,
        "start_command": "npm run preview",
        "health_check_path": "/up",
    }
    problem(
        live.patch(path, json={"description": "x"}, headers={"If-Match": '"1"'}), 412, "precondition_failed"
    )
    dropped = live.patch(path, json={"branch": None, "build": {"start_command": None}}).json()["data"]
    assert dropped["branch"] is None and dropped["build"] == {**NOWHERE, "health_check_path": "/up"}
    assert dropped["name"] == "preview" and dropped["version"] == 3
    # PUT replaces every setting: overrides left out are dropped.
    put = live.put(path, json={"name": "preview", "build": {"repo_url": "/srv/git/other"}}).json()["data"]
    assert put["build"] == {**NOWHERE, "repo_url": "/srv/git/other"}
    assert live.put(path, json={"name": "preview"}).json()["data"]["build"] == NOWHERE
    assert live.get(path).json()["data"] == envs_of(live, project["id"])["preview"]
    errors = problem(live.patch(path, json={"build": {"repo_url": "nope"}}), 422, "validation_failed")
    assert [e["field"] for e in errors["errors"]] == ["build.repo_url"]

    def changes() -> list[list[str]]:
        subject = f"evt.live.{stack.account_id}.env.updated"
        return [e["data"]["changed"] for e in events_on(stack, subject) if e["data"]["id"] == env["id"]]

    assert wait_until(lambda: len(found := changes()) == 4 and found, timeout=10) == [
        ["branch", "build.health_check_path"],
        ["branch", "build.start_command"],
        ["build.repo_url", "build.health_check_path"],
        ["build.repo_url"],
    ]


# --- ResolveDeployTarget ------------------------------------------------------------------------


def test_the_deploy_target_takes_each_setting_from_env_project_or_default(
    stack: Stack, live: httpx.Client
) -> None:
    project = new_project(live)
    production = envs_of(live, project["id"])["production"]
    admin = caller_of(live)
    resolve = c.ResolveDeployTarget(caller=admin, project_id=project["id"], env="production")
    code, fields = refused(stack, resolve)
    assert (code, fields) == ("deploy_settings_missing", ["build.repo_url", "build.start_command"])
    patch_build(live, project["id"], repo_url=REPO, start_command="npm start", build_command="npm ci")
    target = call(stack, resolve)
    assert target == DeployTarget(
        account=stack.account_id,
        mode="live",
        project_id=project["id"],
        env_id=production["id"],
        env_name="production",
        config_version=1,
        repo_url=REPO,
        build_command="npm ci",
        start_command="npm start",
        health_check_path="/",
    )
    live.patch(
        f"/v1/envs/{production['id']}",
        json={"build": {"start_command": "npm run serve", "build_command": "", "health_check_path": "/ok"}},
    )
    live.post(f"/v1/envs/{production['id']}/vars", json={"key": "A", "value": "1"})
    by_id = call(stack, c.ResolveDeployTarget(caller=admin, project_id=project["id"], env=production["id"]))
    assert (by_id.start_command, by_id.build_command, by_id.health_check_path) == ("npm run serve", "", "/ok")
    assert (by_id.repo_url, by_id.config_version, by_id.env_name) == (REPO, 2, "production")
    patch_build(live, project["id"], repo_url=None)
    assert refused(stack, resolve) == ("deploy_settings_missing", ["build.repo_url"])


def test_the_deploy_target_applies_every_access_rule(stack: Stack, live: httpx.Client) -> None:
    project, other = new_project(live), new_project(live)
    patch_build(live, project["id"], repo_url=REPO, start_command="npm start")
    staging_of_other = envs_of(live, other["id"])["staging"]["id"]
    admin = caller_of(live)

    def target(caller: Caller, env: str = "production", project_id: str = project["id"]) -> Any:
        return c.ResolveDeployTarget(caller=caller, project_id=project_id, env=env)

    stranger = msgspec.structs.replace(admin, account_id=new_id("acct"))
    assert refused(stack, target(stranger))[0] == "project_not_found"
    assert refused(stack, target(msgspec.structs.replace(admin, mode="test")))[0] == "project_not_found"
    assert refused(stack, target(admin, "preview"))[0] == "environment_not_found"
    assert refused(stack, target(admin, staging_of_other))[0] == "environment_not_found"
    assert refused(stack, target(admin, "env_" + "a" * 26))[0] == "environment_not_found"
    with key_client(stack, live, project_ids=[other["id"]]) as narrow:
        assert refused(stack, target(caller_of(narrow)))[0] == "project_not_found"
    with key_client(stack, live, environments=["staging"]) as staging_only:
        assert refused(stack, target(caller_of(staging_only)))[0] == "environment_not_found"
        assert call(stack, target(caller_of(staging_only), "staging")).env_name == "staging"
    member = live.post("/v1/members", json={"email": f"{uuid.uuid4().hex[:12]}@example.com"}).json()
    member_id = member["data"]["id"]
    with key_client(stack, live, member_id=member_id) as bound:
        assert refused(stack, target(caller_of(bound)))[0] == "project_not_found"  # no role
        team = f"/v1/projects/{project['id']}/members/{member_id}"
        assert live.put(team, json={"role": "viewer"}).status_code == 200
        assert refused(stack, target(caller_of(bound)))[0] == "insufficient_role"
        assert live.put(team, json={"role": "developer"}).status_code == 200
        assert call(stack, target(caller_of(bound))).env_name == "production"


# --- GetRuntimeVariables ----------------------------------------------------------------------


def runtime(stack: Stack, env_id: str, version: int, deployment_id: str, **over: Any) -> Any:
    fields = {"account": stack.account_id, "mode": "live", **over}
    return c.GetRuntimeVariables(env_id=env_id, config_version=version, deployment_id=deployment_id, **fields)


def test_runtime_variables_are_decrypted_and_the_reveal_audited(stack: Stack, live: httpx.Client) -> None:
    project = new_project(live)
    env = envs_of(live, project["id"])["production"]["id"]
    secret = f"sv-{uuid.uuid4().hex}"
    live.post(f"/v1/envs/{env}/vars", json={"key": "PLAIN", "value": "one"})  # version 2
    live.post(f"/v1/envs/{env}/vars", json={"key": "DB_PASSWORD", "value": secret, "secret": True})
    quiet, loud = new_id("dep"), new_id("dep")
    assert call(stack, runtime(stack, env, 2, quiet)) == {"PLAIN": "one"}
    me = live.get("/v1/me").json()["data"]
    asked = runtime(stack, env, 3, loud, actor=Actor(key_id=me["key_id"], request_id="req_deploy"))
    assert call(stack, asked) == {"PLAIN": "one", "DB_PASSWORD": secret}

    def audited() -> list[dict[str, Any]]:
        params = {"action": "secret.revealed", "resource": env}
        return live.get("/v1/audit-events", params=params).json()["data"]

    [reveal] = wait_until(audited, timeout=15, message="the deploy reveal in the audit log")
    assert reveal["data"]["via"] == "deploy" and reveal["data"]["deployment_id"] == loud
    assert (reveal["data"]["keys"], reveal["data"]["config_version"]) == (["DB_PASSWORD"], 3)
    assert (reveal["actor"]["key_id"], reveal["actor"]["request_id"]) == (me["key_id"], "req_deploy")
    assert [e["id"] for e in live.get("/v1/audit-events", params={"resource": loud}).json()["data"]] == [
        reveal["id"]
    ]
    assert secret not in json.dumps(audited())


def test_runtime_variables_of_another_tenant_or_a_gone_env_are_404(stack: Stack, live: httpx.Client) -> None:
    project = new_project(live)
    envs = envs_of(live, project["id"])
    env, staging = envs["production"]["id"], envs["staging"]["id"]
    dep = new_id("dep")
    assert refused(stack, runtime(stack, env, 1, dep, account=new_id("acct")))[0] == "environment_not_found"
    assert refused(stack, runtime(stack, env, 1, dep, mode="test"))[0] == "environment_not_found"
    assert refused(stack, runtime(stack, "env_" + "b" * 26, 1, dep))[0] == "environment_not_found"
    assert refused(stack, runtime(stack, env, 2, dep))[0] == "config_version_not_found"
    assert live.delete(f"/v1/envs/{staging}").status_code == 200
    assert refused(stack, runtime(stack, staging, 1, dep))[0] == "environment_not_found"
    assert live.delete(f"/v1/projects/{project['id']}").status_code == 200
    assert refused(stack, runtime(stack, env, 1, dep))[0] == "environment_not_found"


def test_runtime_variables_without_the_master_key_are_503(tmp_path: Path) -> None:
    # The service in this process on a store of its own: a stack always has a master key.
    from stratus_contracts import projects as pc
    from stratus_kit import open_local
    from stratus_projects.bootstrap import SERVICE
    from stratus_projects.environments import crypto

    caller = Caller(account_id="acct_" + "c" * 26, mode="live", key_id="key_" + "c" * 26)
    with open_local(
        SERVICE, directory=tmp_path, deps={"keyring": crypto.Keyring(current=os.urandom(32))}
    ) as s:
        project = s.call(pc.CreateProject(caller=caller, name="web"))
        env = s.call(c.ListEnvironments(caller=caller, project_id=project.id)).data[0].id
        s.call(c.ChangeVars(caller=caller, env_id=env, set=[c.VarChange(key="K", value="v", secret=True)]))
    with open_local(SERVICE, directory=tmp_path, deps={"keyring": crypto.Keyring(current=None)}) as s:
        ask = c.GetRuntimeVariables(
            account=caller.account_id, mode="live", env_id=env, config_version=2, deployment_id=new_id("dep")
        )
        with pytest.raises(DomainError) as info:
            s.call(ask)
        assert info.value.reply.code == "encryption_unavailable"


# --- the deployment serving an environment ------------------------------------------------------


def deployment_event(
    stack: Stack,
    project: str,
    env: dict[str, Any],
    ready_at: datetime,
    kind: EventType[deployments.Deployment] = deployments.DEPLOYMENT_SUCCEEDED,
    deployment_id: str | None = None,
) -> tuple[str, bytes, str]:
    """A well-formed deployment event as the deployments service publishes it: (subject,
    payload, event id)."""
    dep = deployment_id or new_id("dep")
    data = deployments.Deployment(
        id=dep,
        project=project,
        env=env["name"],
        env_id=env["id"],
        status="ready",
        ref="main",
        sha="0" * 40,
        config_version=1,
        repo_url=REPO,
        build_command="",
        start_command="npm start",
        health_check_path="/",
        url=f"http://127.0.0.1:4{uuid.uuid4().int % 1000:03d}",
        reason=None,
        failure_code=None,
        rollback_of=None,
        mode="live",
        created=ready_at - timedelta(seconds=5),
        updated=ready_at,
        ready_at=ready_at,
        version=4,
    )
    event_id = new_id("evt")
    event = kind.event(
        id=event_id, created=ready_at, mode="live", account=stack.account_id, data=data, actor=None
    )
    return kind.subject("live", stack.account_id), msgspec.json.encode(event), event_id


def publish(stack: Stack, *events: tuple[str, bytes, str]) -> None:
    async def send() -> None:
        nc = await nats.connect(stack.nats_url.split(","))
        try:
            js = nc.jetstream()
            for subject, payload, event_id in events:
                await js.publish(subject, payload, headers={"Nats-Msg-Id": event_id})
        finally:
            await nc.close()

    asyncio.run(send())


def served(client: httpx.Client, env_id: str, deployment_id: str) -> dict[str, Any] | None:
    env = client.get(f"/v1/envs/{env_id}").json()["data"]
    return env if env["deployment_id"] == deployment_id else None


def url_of(payload: bytes) -> str:
    return json.loads(payload)["data"]["url"]


def test_a_succeeded_deployment_sets_the_env_url_and_an_older_one_never_wins(
    stack: Stack, live: httpx.Client
) -> None:
    project = new_project(live)
    envs = envs_of(live, project["id"])
    production, staging = envs["production"], envs["staging"]
    t0 = datetime.now(UTC)
    newer = deployment_event(stack, project["id"], production, t0)
    publish(stack, newer)
    env = wait_until(lambda: served(live, production["id"], json.loads(newer[1])["data"]["id"]), timeout=15)
    assert env["url"] == url_of(newer[1]) and env["version"] == production["version"] + 1
    got = live.get(f"/v1/envs/{production['id']}")
    assert got.headers["etag"] == f'"{env["version"]}"'
    # Late and older, a redelivery (same content, another message id), a superseded one: none
    # change anything. A marker on another environment, after them, shows they were consumed.
    older = deployment_event(stack, project["id"], production, t0 - timedelta(minutes=1))
    again = (newer[0], newer[1], new_id("evt"))
    gone = deployment_event(
        stack, project["id"], production, t0 + timedelta(minutes=1), kind=deployments.DEPLOYMENT_SUPERSEDED
    )
    marker = deployment_event(stack, project["id"], staging, t0)
    publish(stack, older, again, gone, marker)
    wait_until(lambda: served(live, staging["id"], json.loads(marker[1])["data"]["id"]), timeout=15)
    assert live.get(f"/v1/envs/{production['id']}").json()["data"] == env
    # A rollback that became ready later serves the environment.
    rollback = deployment_event(
        stack, project["id"], production, t0 + timedelta(seconds=30), kind=deployments.DEPLOYMENT_ROLLED_BACK
    )
    publish(stack, rollback)
    rolled = wait_until(
        lambda: served(live, production["id"], json.loads(rollback[1])["data"]["id"]), timeout=15
    )
    assert rolled["url"] == url_of(rollback[1])
    updates = [
        e["data"]
        for e in events_on(stack, f"evt.live.{stack.account_id}.env.updated")
        if e["data"]["id"] == production["id"]
    ]
    assert [(u["changed"], u["deployment_id"]) for u in updates] == [
        (["url", "deployment_id"], json.loads(newer[1])["data"]["id"]),
        (["url", "deployment_id"], json.loads(rollback[1])["data"]["id"]),
    ]


def test_a_deleted_environment_ignores_deployment_events(stack: Stack, live: httpx.Client) -> None:
    project = new_project(live)
    envs = envs_of(live, project["id"])
    assert live.delete(f"/v1/envs/{envs['staging']['id']}").status_code == 200
    now = datetime.now(UTC)
    late = deployment_event(stack, project["id"], envs["staging"], now)
    marker = deployment_event(stack, project["id"], envs["production"], now)
    publish(stack, late, marker)
    wait_until(
        lambda: served(live, envs["production"]["id"], json.loads(marker[1])["data"]["id"]), timeout=15
    )
    problem(live.get(f"/v1/envs/{envs['staging']['id']}"), 404, "environment_not_found")
    assert "staging" not in envs_of(live, project["id"])


# --- stored events ------------------------------------------------------------------------------


def test_events_stored_before_build_settings_still_load() -> None:
    # As the store holds them, in JSON from before build settings: no `build`, no `deployment_id`.
    from eventsourcing.persistence import StoredEvent

    from stratus_eventstore.mapper import MsgspecMapper, NullTranscoder
    from stratus_projects import domain as projects
    from stratus_projects.environments import domain as environments

    mapper = MsgspecMapper(transcoder=NullTranscoder())
    project_id, env_id = uuid.uuid4(), uuid.uuid4()

    def load(topic: str, aggregate: uuid.UUID, version: int, **fields: Any) -> Any:
        state = {"originator_id": str(aggregate), "originator_version": version, **fields}
        state["timestamp"] = "2025-01-02T03:04:05Z"
        stored = StoredEvent(
            originator_id=aggregate, originator_version=version, topic=topic, state=json.dumps(state).encode()
        )
        return mapper.to_domain_event(stored)

    project = projects.project(
        None,
        [
            load(
                "stratus_projects.domain:ProjectCreated",
                project_id,
                1,
                account="acct_x",
                name="web",
                description="",
            ),
            load("stratus_projects.domain:ProjectUpdated", project_id, 2, description="v2"),
        ],
    )
    assert (project.description, project.build) == ("v2", deployments.BuildSettings())
    env = environments.project(
        None,
        [
            load(
                "stratus_projects.envs_domain:EnvironmentCreated",
                env_id,
                1,
                account="acct_x",
                project_id=str(project_id),
                name="production",
            ),
            load(
                "stratus_projects.envs_domain:EnvironmentReplaced",
                env_id,
                2,
                name="prod",
                description="",
                branch=None,
                auto_deploy=True,
                changed=["name", "auto_deploy"],
            ),
        ],
    )
    assert (env.name, env.auto_deploy, env.build) == ("prod", True, deployments.BuildSettings())
    assert (env.url, env.deployment_id) == (None, None)
    reveal = load(
        "stratus_projects.envs_domain:SecretRevealed",
        uuid.uuid4(),
        1,
        account="acct_x",
        env_id=str(env_id),
        project_id=str(project_id),
        environment="prod",
        config_version=2,
        keys=["K"],
        via="vars",
    )
    assert reveal.deployment_id is None
