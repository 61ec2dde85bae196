"""Members through the whole stack: add, list, get, remove; unique emails; keys bound to a member
die with it; other tenants and modes never see them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from stratus_testing import Stack

from .conftest import problem
from .test_api_keys import create_key, refused_within


def email(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def add(client: httpx.Client, address: str, name: str = "") -> dict[str, Any]:
    response = client.post("/v1/members", json={"email": address, "name": name})
    assert response.status_code == 201, response.text
    member = response.json()["data"]
    assert response.headers["location"] == f"/v1/members/{member['id']}"
    return member


def test_add_list_get_remove(live: httpx.Client) -> None:
    address = email("ada")
    member = add(live, address.upper(), "Ada")
    assert member["id"].startswith("mem_") and member["object"] == "member"
    assert (member["email"], member["name"], member["mode"]) == (address, "Ada", "live")
    got = live.get(f"/v1/members/{member['id']}")
    assert got.status_code == 200 and got.json()["data"] == member and got.headers["etag"] == '"1"'
    listed = live.get("/v1/members", params={"limit": 100}).json()
    assert member["id"] in [m["id"] for m in listed["data"]] and "has_more" in listed["meta"]

    removed = live.delete(f"/v1/members/{member['id']}")
    assert removed.status_code == 200 and removed.json()["data"]["deleted"] is True
    problem(live.get(f"/v1/members/{member['id']}"), 404, "member_not_found")
    problem(live.delete(f"/v1/members/{member['id']}"), 404, "member_not_found")
    assert member["id"] not in [
        m["id"] for m in live.get("/v1/members", params={"limit": 100}).json()["data"]
    ]
    # Its email is free again.
    add(live, address)


def test_duplicate_email_is_409(live: httpx.Client) -> None:
    address = email()
    add(live, address)
    body = problem(live.post("/v1/members", json={"email": address.upper()}), 409, "member_email_taken")
    assert address in body["detail"]


def test_removing_a_member_revokes_its_keys(stack: Stack, live: httpx.Client) -> None:
    member = add(live, email("bound"))
    secret, key = create_key(live, member_id=member["id"])
    assert key["member_id"] == member["id"]
    with stack.client(secret) as own:
        assert own.get("/v1/me").json()["data"]["member_id"] == member["id"]
        assert live.delete(f"/v1/members/{member['id']}").status_code == 200
        refused_within(own, "api_key_revoked")
    assert live.get(f"/v1/keys/{key['id']}").json()["data"]["revoked"] is not None
    problem(
        live.post("/v1/keys", json={"name": "x", "scopes": ["read"], "member_id": member["id"]}),
        404,
        "member_not_found",
    )


def test_members_belong_to_one_tenant_and_mode(
    stack: Stack, live: httpx.Client, test_mode: httpx.Client
) -> None:
    member = add(live, email("mine"))
    problem(test_mode.get(f"/v1/members/{member['id']}"), 404, "member_not_found")
    done = stack.cli("accounts", "create", "member-tenant", "--json")
    assert done.returncode == 0, done.stderr
    with stack.client(json.loads(done.stdout)["keys"]["live"]) as theirs:
        problem(theirs.get(f"/v1/members/{member['id']}"), 404, "member_not_found")
        problem(theirs.delete(f"/v1/members/{member['id']}"), 404, "member_not_found")
        assert theirs.get("/v1/members").json()["data"] == []
        # The same address may be a member of another account.
        add(theirs, member["email"])


def test_bodies_and_scope_are_checked(stack: Stack, live: httpx.Client) -> None:
    for body in ({"email": "not-an-email"}, {"email": email(), "role": "owner"}, {}):
        problem(live.post("/v1/members", json=body), 422, "validation_failed")
    reader, _ = create_key(live, scopes=["read", "write"])
    with stack.client(reader) as plain:
        problem(plain.get("/v1/members"), 403, "insufficient_scope")
        problem(plain.post("/v1/members", json={"email": email()}), 403, "insufficient_scope")


def test_list_paginates(test_mode: httpx.Client) -> None:
    made = [add(test_mode, email("page"))["id"] for _ in range(3)]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = test_mode.get("/v1/members", params=params).json()
        seen += [m["id"] for m in page["data"]]
        if not page["meta"]["has_more"]:
            break
        params["cursor"] = page["meta"]["next_cursor"]
    assert seen[:3] == made[::-1] and len(seen) == len(set(seen))
