"""Project access through the running stack: keys and tokens restricted to projects, team
access routes (`/v1/projects/{id}/members`), member-bound keys bounded by their roles, the
last-owner rule, and team changes published with their actor."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import nats

from stratus_testing import Stack, wait_until

from .conftest import problem


def unique(prefix: str = "pa") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_project(client: httpx.Client) -> dict[str, Any]:
    made = client.post("/v1/projects", json={"name": unique()})
    assert made.status_code == 201, made.text
    return made.json()["data"]


def new_member(live: httpx.Client) -> str:
    made = live.post("/v1/members", json={"email": f"{uuid.uuid4().hex[:12]}@example.com", "name": "Dev"})
    assert made.status_code == 201, made.text
    return made.json()["data"]["id"]


@contextmanager
def bearer(stack: Stack, live: httpx.Client, route: str, body: dict[str, Any]) -> Iterator[httpx.Client]:
    """A client for a new key (`/v1/keys`) or token (`/v1/tokens`) made by the admin key."""
    made = live.post(route, json=body)
    assert made.status_code == 201, made.text
    data = made.json()["data"]
    with stack.client(data.get("secret") or data["token"]) as client:
        yield client


def new_key(stack: Stack, live: httpx.Client, **body: Any) -> Any:
    return bearer(
        stack, live, "/v1/keys", {"name": unique("key"), "scopes": ["read", "write", "admin"], **body}
    )


def members_path(project_id: str, member_id: str = "") -> str:
    return f"/v1/projects/{project_id}/members" + (f"/{member_id}" if member_id else "")


def visible_names(client: httpx.Client) -> set[str]:
    return {p["name"] for p in client.get("/v1/projects", params={"limit": 100}).json()["data"]}


# --- restrictions (tokens exist today; keys need identity's POST /v1/keys) ----------------------


def check_restricted(client: httpx.Client, mine: dict[str, Any], other: dict[str, Any]) -> None:
    assert client.get(f"/v1/projects/{mine['id']}").status_code == 200
    problem(client.get(f"/v1/projects/{other['id']}"), 404, "project_not_found")
    problem(client.patch(f"/v1/projects/{other['id']}", json={"description": "x"}), 404, "project_not_found")
    problem(client.delete(f"/v1/projects/{other['id']}"), 404, "project_not_found")
    problem(client.get(members_path(other["id"])), 404, "project_not_found")
    names = visible_names(client)
    assert mine["name"] in names and other["name"] not in names
    body = problem(client.post("/v1/projects", json={"name": unique()}), 403, "key_restricted")
    assert "restricted" in body["detail"]


def test_a_token_restricted_to_projects_sees_only_those(stack: Stack, live: httpx.Client) -> None:
    mine, other = new_project(live), new_project(live)
    with bearer(stack, live, "/v1/tokens", {"project_ids": [mine["id"]]}) as client:
        check_restricted(client, mine, other)


def test_a_key_restricted_to_projects_sees_only_those(stack: Stack, live: httpx.Client) -> None:
    mine, other = new_project(live), new_project(live)
    with new_key(stack, live, project_ids=[mine["id"]]) as client:
        check_restricted(client, mine, other)


def test_managing_team_access_needs_the_admin_scope(stack: Stack, live: httpx.Client) -> None:
    project = new_project(live)
    with bearer(stack, live, "/v1/tokens", {"scopes": ["read", "write"]}) as client:
        assert client.get(members_path(project["id"])).json()["data"] == []
        body = problem(
            client.put(members_path(project["id"], "mem_" + "a" * 26), json={"role": "viewer"}),
            403,
            "insufficient_scope",
        )
        assert "`admin`" in body["detail"]
        problem(client.delete(members_path(project["id"], "mem_" + "a" * 26)), 403, "insufficient_scope")


# --- team access routes (need identity's POST /v1/members and qry.identity.get_member) ---------


def test_team_access_round_trip(live: httpx.Client) -> None:
    project, ann = new_project(live), new_member(live)
    put = live.put(members_path(project["id"], ann), json={"role": "developer"})
    assert put.status_code == 200, put.text
    member = put.json()["data"]
    assert (member["id"], member["object"], member["project_id"], member["role"]) == (
        ann,
        "project_member",
        project["id"],
        "developer",
    )
    assert live.get(members_path(project["id"], ann)).json()["data"] == member
    assert [m["id"] for m in live.get(members_path(project["id"])).json()["data"]] == [ann]
    assert (
        live.put(members_path(project["id"], ann), json={"role": "owner"}).json()["data"]["role"] == "owner"
    )
    assert live.get(f"/v1/projects/{project['id']}").json()["data"]["owner"] == ann
    assert [p["id"] for p in live.get("/v1/projects", params={"owner": ann}).json()["data"]] == [
        project["id"]
    ]
    problem(live.delete(members_path(project["id"], ann)), 409, "last_owner")


def test_team_access_refuses_what_is_not_there(live: httpx.Client) -> None:
    project, ann = new_project(live), new_member(live)
    nobody = "mem_" + "a" * 26
    problem(live.put(members_path(project["id"], nobody), json={"role": "viewer"}), 404, "member_not_found")
    problem(live.put(members_path("prj_" + "a" * 26, ann), json={"role": "viewer"}), 404, "project_not_found")
    problem(live.get(members_path(project["id"], ann)), 404, "project_member_not_found")
    problem(live.delete(members_path(project["id"], ann)), 404, "project_member_not_found")
    for body in ({"role": "god"}, {}, {"role": "viewer", "since": "now"}):
        problem(live.put(members_path(project["id"], ann), json=body), 422, "validation_failed")
    assert live.put(members_path(project["id"], ann), json={"role": "viewer"}).status_code == 200
    removed = live.delete(members_path(project["id"], ann))
    assert removed.status_code == 200 and removed.json()["data"]["deleted"] is True
    assert live.get(members_path(project["id"])).json()["data"] == []


# --- member-bound keys (need identity's POST /v1/members and POST /v1/keys with member_id) ----


def test_a_member_bound_key_owns_what_it_creates(stack: Stack, live: httpx.Client) -> None:
    ann, ben = new_member(live), new_member(live)
    with new_key(stack, live, member_id=ann) as ann_key, new_key(stack, live, member_id=ben) as ben_key:
        project = new_project(ann_key)
        assert project["owner"] == ann
        assert [(m["id"], m["role"]) for m in ann_key.get(members_path(project["id"])).json()["data"]] == [
            (ann, "owner")
        ]
        # Ben has no role on it: it does not exist for his key.
        problem(ben_key.get(f"/v1/projects/{project['id']}"), 404, "project_not_found")
        assert project["name"] not in visible_names(ben_key)
        assert project["name"] in visible_names(live)  # unbound keys stay account-wide


def test_roles_bound_a_member_bound_key(stack: Stack, live: httpx.Client) -> None:
    ann, ben = new_member(live), new_member(live)
    with new_key(stack, live, member_id=ann) as ann_key, new_key(stack, live, member_id=ben) as ben_key:
        pid = new_project(ann_key)["id"]
        assert ann_key.put(members_path(pid, ben), json={"role": "viewer"}).status_code == 200
        assert ben_key.get(f"/v1/projects/{pid}").status_code == 200
        body = problem(
            ben_key.patch(f"/v1/projects/{pid}", json={"description": "x"}), 403, "insufficient_role"
        )
        assert "`developer`" in body["detail"]
        problem(ben_key.put(members_path(pid, ben), json={"role": "admin"}), 403, "insufficient_role")
        ann_key.put(members_path(pid, ben), json={"role": "developer"})
        assert ben_key.patch(f"/v1/projects/{pid}", json={"description": "x"}).status_code == 200
        problem(ben_key.delete(f"/v1/projects/{pid}"), 403, "insufficient_role")
        ann_key.put(members_path(pid, ben), json={"role": "admin"})
        problem(
            ben_key.delete(members_path(pid, ann)), 403, "insufficient_role"
        )  # admins cannot touch owners
        problem(ann_key.put(members_path(pid, ann), json={"role": "admin"}), 409, "last_owner")
        ann_key.put(members_path(pid, ben), json={"role": "owner"})
        assert ann_key.put(members_path(pid, ann), json={"role": "viewer"}).status_code == 200
        assert live.get(f"/v1/projects/{pid}").json()["data"]["owner"] == ben
        assert ben_key.delete(f"/v1/projects/{pid}").status_code == 200


def test_team_changes_are_published_with_their_actor(stack: Stack, live: httpx.Client) -> None:
    project, ann = new_project(live), new_member(live)
    put = live.put(
        members_path(project["id"], ann), json={"role": "admin"}, headers={"X-Request-Id": unique("rq")}
    )
    assert put.status_code == 200, put.text
    subject = f"evt.live.{stack.account_id}.project.member_added"

    async def last_added() -> dict[str, Any] | None:
        nc = await nats.connect(stack.nats_url.split(","))
        try:
            msg = await nc.jetstream().get_last_msg("EVENTS", subject)
            return json.loads(msg.data)
        except nats.js.errors.NotFoundError:
            return None
        finally:
            await nc.close()

    def published() -> dict[str, Any] | None:
        event = asyncio.run(last_added())
        return event if event and event["data"]["id"] == ann else None

    event = wait_until(published, timeout=10.0, message="project.member_added on EVENTS")
    assert event["type"] == "project.member_added" and event["data"]["project_id"] == project["id"]
    assert event["data"]["role"] == "admin"
    me = live.get("/v1/me").json()["data"]
    assert event["actor"]["key_id"] == me["key_id"]
    assert event["actor"]["request_id"] == put.headers["x-request-id"]


def test_a_member_removed_from_the_account_leaves_every_team(stack: Stack, live: httpx.Client) -> None:
    owned, shared, other = new_project(live), new_project(live), new_project(live)
    ann, bob = new_member(live), new_member(live)
    for project, member, role in ((owned, ann, "owner"), (shared, ann, "developer"), (shared, bob, "viewer")):
        assert live.put(members_path(project["id"], member), json={"role": role}).status_code == 200
    with new_key(stack, live, member_id=ann) as ann_key:
        assert ann_key.get(f"/v1/projects/{owned['id']}").status_code == 200

        removal = live.delete(f"/v1/members/{ann}", headers={"X-Request-Id": unique("rq")})
        assert removal.status_code == 200, removal.text
        # Identity revokes the member's keys; every gateway drops them within a second.
        wait_until(lambda: ann_key.get("/v1/me").status_code == 401, timeout=5.0, message="key revoked")

    def team(project: dict[str, Any]) -> set[str]:
        return {m["id"] for m in live.get(members_path(project["id"])).json()["data"]}

    # Projects follows identity's member.deleted: even the last owner goes (nobody can act as them).
    wait_until(lambda: ann not in team(owned) and ann not in team(shared), timeout=10.0, message="ann gone")
    assert team(shared) == {bob} and team(other) == set()
    assert live.get(f"/v1/projects/{owned['id']}").json()["data"]["owner"] is None
    assert live.get("/v1/projects", params={"owner": ann}).json()["data"] == []

    # The removals carry the actor of the request that removed the member from the account.
    def audited() -> list[dict[str, Any]]:
        audit = live.get("/v1/audit-events", params={"action": "project.member_removed", "limit": 100})
        found = [e for e in audit.json()["data"] if e["data"]["id"] == ann]
        return found if len(found) == 2 else []

    mine = wait_until(audited, timeout=10.0, message="both removals in the audit log")
    assert {e["data"]["project_id"] for e in mine} == {owned["id"], shared["id"]}
    assert {e["actor"]["request_id"] for e in mine} == {removal.headers["x-request-id"]}
