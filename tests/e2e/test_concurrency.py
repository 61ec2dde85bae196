"""Optimistic concurrency over HTTP: every single resource carries its version as a strong `ETag`,
and PATCH/PUT/DELETE (and key rotation) with `If-Match` apply only to that version — checked by
the service on the aggregate it decides on, so clients racing with one ETag get one winner."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from stratus_testing import Stack

from .conftest import problem


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _etag(response: httpx.Response) -> str:
    assert response.status_code in (200, 201), response.text
    data = response.json()["data"]
    assert response.headers["etag"] == f'"{data["version"]}"'
    return response.headers["etag"]


def _project(client: httpx.Client) -> dict:
    response = client.post("/v1/projects", json={"name": _name("occ")})
    _etag(response)
    return response.json()["data"]


def _member(client: httpx.Client) -> dict:
    response = client.post("/v1/members", json={"email": f"{_name('m')}@example.com"})
    _etag(response)
    return response.json()["data"]


def test_every_single_resource_has_an_etag(live: httpx.Client) -> None:
    project = _project(live)
    base = f"/v1/projects/{project['id']}"
    assert _etag(live.get(base)) == '"1"'
    assert _etag(live.patch(base, json={"description": "d"})) == '"2"'
    member = _member(live)
    assert _etag(live.get(f"/v1/members/{member['id']}")) == '"1"'
    assert _etag(live.put(f"{base}/members/{member['id']}", json={"role": "viewer"})) == '"3"'
    assert _etag(live.get(f"{base}/members/{member['id']}")) == '"3"'
    assert _etag(live.delete(f"{base}/members/{member['id']}")) == '"4"'
    key = live.post("/v1/keys", json={"name": _name("k"), "scopes": ["read"]})
    assert _etag(key) == '"1"'
    key_path = f"/v1/keys/{key.json()['data']['id']}"
    assert _etag(live.get(key_path)) == '"1"'
    assert _etag(live.post(f"{key_path}/rotate", json={})) == '"2"'
    assert _etag(live.delete(key_path)) == '"3"'
    assert _etag(live.delete(f"/v1/members/{member['id']}")) == '"2"'
    assert _etag(live.delete(base)) == '"5"'


def test_project_writes_apply_only_at_the_matching_version(live: httpx.Client) -> None:
    project = _project(live)
    path = f"/v1/projects/{project['id']}"
    changed = live.patch(path, json={"description": "first"}, headers={"If-Match": '"1"'})
    assert _etag(changed) == '"2"'
    stale = live.patch(path, json={"description": "lost"}, headers={"If-Match": '"1"'})
    body = problem(stale, 412, "precondition_failed")
    assert '"2"' in body["detail"]
    problem(live.delete(path, headers={"If-Match": '"1"'}), 412, "precondition_failed")
    got = live.get(path).json()["data"]
    assert got["description"] == "first" and got["version"] == 2 and not got["deleted"]
    # `*` means "whatever version exists".
    assert _etag(live.patch(path, json={"description": "any"}, headers={"If-Match": "*"})) == '"3"'
    assert live.delete(path, headers={"If-Match": '"3"'}).json()["data"]["deleted"]
    # A resource that does not exist is a 404 whatever the precondition says.
    problem(live.patch(path, json={"description": "x"}, headers={"If-Match": "*"}), 404, "project_not_found")


def test_malformed_if_match_is_400(live: httpx.Client) -> None:
    project = _project(live)
    path = f"/v1/projects/{project['id']}"
    for value in ("1", "W/1", '"1" "2"', '"1",'):
        body = problem(
            live.patch(path, json={"description": "x"}, headers={"If-Match": value}),
            400,
            "invalid_precondition",
        )
        assert '"3"' in body["detail"]  # shows the accepted form
    # A list naming several versions: a write expects one.
    problem(
        live.patch(path, json={"description": "x"}, headers={"If-Match": '"1", "2"'}),
        400,
        "invalid_precondition",
    )
    assert live.get(path).json()["data"]["version"] == 1


def test_a_well_formed_tag_that_is_not_current_is_412(live: httpx.Client) -> None:
    """RFC 9110: If-Match compares strongly, so a weak tag, an opaque one or one beyond any
    version never matches: 412, not 400; a list matches when one of its tags is current."""
    project = _project(live)
    path = f"/v1/projects/{project['id']}"
    for value in ('W/"1"', '"one"', '""', '"' + "9" * 40 + '"'):
        problem(
            live.patch(path, json={"description": "x"}, headers={"If-Match": value}),
            412,
            "precondition_failed",
        )
        problem(live.delete(path, headers={"If-Match": value}), 412, "precondition_failed")
    assert live.get(path).json()["data"]["version"] == 1
    listed = live.patch(path, json={"description": "y"}, headers={"If-Match": 'W/"1", "1", "other"'})
    assert listed.status_code == 200 and _etag(listed) == '"2"'
    # 404 still comes first.
    problem(
        live.patch("/v1/projects/prj_" + "z" * 26, json={"description": "x"}, headers={"If-Match": 'W/"1"'}),
        404,
        "project_not_found",
    )


def test_key_writes_apply_only_at_the_matching_version(live: httpx.Client, stack: Stack) -> None:
    made = live.post("/v1/keys", json={"name": _name("k"), "scopes": ["read"]}).json()["data"]
    path = f"/v1/keys/{made['id']}"
    assert _etag(live.patch(path, json={"name": "renamed"}, headers={"If-Match": '"1"'})) == '"2"'
    problem(live.patch(path, json={"name": "lost"}, headers={"If-Match": '"1"'}), 412, "precondition_failed")
    rotated = live.post(f"{path}/rotate", json={}, headers={"If-Match": '"1"'})
    assert "secret" not in problem(rotated, 412, "precondition_failed")
    problem(live.delete(path, headers={"If-Match": '"1"'}), 412, "precondition_failed")
    # The stale revoke did nothing: the key still works.
    with stack.client(made["secret"]) as own:
        assert own.get("/v1/me").status_code == 200
    assert live.delete(path, headers={"If-Match": '"2"'}).json()["data"]["revoked"]


def test_member_removal_applies_only_at_the_matching_version(live: httpx.Client) -> None:
    member = _member(live)
    # Binding a key to the member records it on the member: a new version.
    live.post("/v1/keys", json={"name": _name("bound"), "scopes": ["read"], "member_id": member["id"]})
    path = f"/v1/members/{member['id']}"
    assert live.get(path).headers["etag"] == '"2"'
    problem(live.delete(path, headers={"If-Match": '"1"'}), 412, "precondition_failed")
    assert live.delete(path, headers={"If-Match": '"2"'}).json()["data"]["deleted"]


def test_team_access_versions_are_per_membership(live: httpx.Client) -> None:
    project = _project(live)
    a, b = _member(live), _member(live)
    team = f"/v1/projects/{project['id']}/members"
    # If-Match on a membership that does not exist yet never matches.
    problem(
        live.put(f"{team}/{a['id']}", json={"role": "viewer"}, headers={"If-Match": "*"}),
        412,
        "precondition_failed",
    )
    a_etag = _etag(live.put(f"{team}/{a['id']}", json={"role": "viewer"}))
    live.put(f"{team}/{b['id']}", json={"role": "viewer"})
    # B's arrival changed the project, not A's membership.
    assert live.get(f"{team}/{a['id']}").headers["etag"] == a_etag
    promoted = live.put(f"{team}/{a['id']}", json={"role": "developer"}, headers={"If-Match": a_etag})
    assert _etag(promoted) != a_etag
    stale = live.put(f"{team}/{a['id']}", json={"role": "admin"}, headers={"If-Match": a_etag})
    problem(stale, 412, "precondition_failed")
    problem(live.delete(f"{team}/{a['id']}", headers={"If-Match": a_etag}), 412, "precondition_failed")
    assert live.get(f"{team}/{a['id']}").json()["data"]["role"] == "developer"
    removed = live.delete(f"{team}/{a['id']}", headers={"If-Match": promoted.headers["etag"]})
    assert removed.json()["data"]["deleted"]


async def _race(stack: Stack, method: str, path: str, bodies: list[dict], etag: str) -> list[int]:
    async with stack.async_client(stack.live_key) as client:
        responses = await asyncio.gather(
            *(client.request(method, path, json=body, headers={"If-Match": etag}) for body in bodies)
        )
    for response in responses:
        if response.status_code != 200:
            problem(response, 412, "precondition_failed")
    return sorted(r.status_code for r in responses)


async def test_two_clients_racing_with_one_etag_make_one_winner(stack: Stack) -> None:
    with stack.client(stack.live_key) as client:
        project = _project(client)
    path = f"/v1/projects/{project['id']}"
    for round_ in range(5):
        etag = f'"{round_ + 1}"'
        bodies = [{"description": f"round {round_} writer {w}"} for w in range(2)]
        assert await _race(stack, "PATCH", path, bodies, etag) == [200, 412]
    with stack.client(stack.live_key) as client:
        final = client.get(path).json()["data"]
    assert final["version"] == 6 and final["description"].startswith("round 4 writer")


async def test_many_clients_racing_on_a_key_make_one_winner(stack: Stack) -> None:
    with stack.client(stack.live_key) as client:
        made = client.post("/v1/keys", json={"name": _name("race"), "scopes": ["read"]}).json()["data"]
    bodies = [{"name": f"writer {w}"} for w in range(8)]
    assert await _race(stack, "PATCH", f"/v1/keys/{made['id']}", bodies, '"1"') == [200] + [412] * 7
