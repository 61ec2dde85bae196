"""Projects through the whole stack: HTTP → gateway → NATS → projects service → event store."""

from __future__ import annotations

import uuid

import httpx

from stratus_testing import Stack

from .conftest import problem


def unique(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_create_get_list_patch_delete(live: httpx.Client) -> None:
    name = unique("web")
    created = live.post("/v1/projects", json={"name": name, "description": "site"})
    assert created.status_code == 201, created.text
    body = created.json()
    project = body["data"]
    assert body["error"] is None and body["meta"]["request_id"] == created.headers["x-request-id"]
    assert project["id"].startswith("prj_") and project["object"] == "project"
    assert (project["name"], project["description"], project["mode"]) == (name, "site", "live")
    assert project["created"].endswith("Z") and project["updated"] == project["created"]
    assert project["owner"] is None  # an unbound key is no member: nobody owns the project
    assert created.headers["location"] == f"/v1/projects/{project['id']}"

    got = live.get(f"/v1/projects/{project['id']}")
    assert got.status_code == 200 and got.json()["data"] == project
    assert got.headers["etag"] == '"1"'

    listed = live.get("/v1/projects", params={"name": name})
    assert [p["id"] for p in listed.json()["data"]] == [project["id"]]

    patched = live.patch(f"/v1/projects/{project['id']}", json={"description": "new"})
    assert patched.status_code == 200
    assert patched.json()["data"]["description"] == "new" and patched.json()["data"]["name"] == name
    assert patched.headers["etag"] == '"2"'

    deleted = live.delete(f"/v1/projects/{project['id']}")
    assert deleted.status_code == 200 and deleted.json()["data"]["deleted"] is True
    problem(live.get(f"/v1/projects/{project['id']}"), 404, "project_not_found")
    problem(live.delete(f"/v1/projects/{project['id']}"), 404, "project_not_found")
    assert live.get("/v1/projects", params={"name": name}).json()["data"] == []


def test_duplicate_name_is_409(live: httpx.Client) -> None:
    name = unique()
    assert live.post("/v1/projects", json={"name": name}).status_code == 201
    body = problem(live.post("/v1/projects", json={"name": name}), 409, "project_name_taken")
    assert name in body["detail"]


def test_pagination_walks_every_project_once(test_mode: httpx.Client) -> None:
    made = {
        test_mode.post("/v1/projects", json={"name": unique("pg")}).json()["data"]["id"] for _ in range(5)
    }
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2, "sort": "created"}
    while True:
        page = test_mode.get("/v1/projects", params=params).json()
        assert len(page["data"]) <= 2
        seen += [p["id"] for p in page["data"]]
        if not page["meta"]["has_more"]:
            assert page["meta"]["next_cursor"] is None
            break
        params["cursor"] = page["meta"]["next_cursor"]
    assert made <= set(seen) and len(seen) == len(set(seen))
    default = test_mode.get("/v1/projects").json()
    assert len(default["data"]) <= 20 and "has_more" in default["meta"]


def test_list_parameters_are_validated(live: httpx.Client) -> None:
    for params in ({"limit": 101}, {"limit": 0}, {"limit": "x"}, {"sort": "size"}):
        problem(live.get("/v1/projects", params=params), 422, "validation_failed")
    problem(live.get("/v1/projects", params={"cursor": "garbage"}), 400, "invalid_cursor")


def test_bodies_are_validated_field_by_field(live: httpx.Client) -> None:
    cases = [
        ({"name": "Not Valid!"}, "name"),
        ({"name": "x" * 64}, "name"),
        ({"name": unique(), "id": "prj_mine"}, "id"),
        ({"name": unique(), "created": "2020-01-01T00:00:00Z"}, "created"),
        ({"description": "no name"}, "name"),
        ({"name": 7}, "name"),
    ]
    for body, field in cases:
        details = problem(live.post("/v1/projects", json=body), 422, "validation_failed")
        assert field in [e["field"] for e in details["errors"]], (body, details)
    problem(live.post("/v1/projects", json=[1, 2]), 422, "validation_failed")


def test_modes_never_meet(live: httpx.Client, test_mode: httpx.Client) -> None:
    name = unique("iso")
    project = live.post("/v1/projects", json={"name": name}).json()["data"]
    problem(test_mode.get(f"/v1/projects/{project['id']}"), 404, "project_not_found")
    problem(
        test_mode.patch(f"/v1/projects/{project['id']}", json={"description": "x"}), 404, "project_not_found"
    )
    assert test_mode.get("/v1/projects", params={"name": name}).json()["data"] == []
    # The same name is free in test mode: a separate store.
    assert test_mode.post("/v1/projects", json={"name": name}).json()["data"]["mode"] == "test"


def test_malformed_project_ids_are_404(live: httpx.Client) -> None:
    for bad in ["nope", "prj_" + "a" * 26, "acct_" + "a" * 26, "prj_!!"]:
        problem(live.get(f"/v1/projects/{bad}"), 404, "project_not_found")


def test_rebuilt_list_view_equals_live_view(stack: Stack, live: httpx.Client) -> None:
    for _ in range(3):
        live.post("/v1/projects", json={"name": unique("rb")})
    before = live.get("/v1/projects", params={"limit": 100, "sort": "name"}).json()["data"]
    result = stack.cli("rebuild", "projects")
    assert result.returncode == 0, result.stderr
    after = live.get("/v1/projects", params={"limit": 100, "sort": "name"}).json()["data"]
    assert after == before and before
