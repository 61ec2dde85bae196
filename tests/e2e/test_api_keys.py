"""API keys through the whole stack: create, list, get, patch, rotate with overlap, revoke — and
the ways a key's holder might try to reach beyond it (other tenants, other modes, wider scopes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from stratus_contracts import keys
from stratus_testing import Stack, wait_until

from .conftest import problem

PRJ = "prj_" + "a" * 26


def create_key(client: httpx.Client, **body: Any) -> tuple[str, dict[str, Any]]:
    body = {"name": "ci", "scopes": ["read"], **body}
    response = client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert response.headers["location"] == f"/v1/keys/{data['id']}"
    return data.pop("secret"), data


def refused_within(client: httpx.Client, code: str, status: int = 401, path: str = "/v1/me") -> None:
    """Every gateway must refuse a changed key within a second of the change."""
    wait_until(lambda: client.get(path).status_code == status, timeout=1.0, message=f"{code} on {path}")
    problem(client.get(path), status, code)


@pytest.fixture(scope="module")
def other(stack: Stack) -> dict[str, Any]:
    """A second tenant, made the way an operator would."""
    done = stack.cli("accounts", "create", "other", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def other_live(stack: Stack, other: dict[str, Any]) -> Iterator[httpx.Client]:
    with stack.client(other["keys"]["live"]) as client:
        yield client


def test_create_get_list_patch_revoke(stack: Stack, live: httpx.Client) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    secret, key = create_key(
        live,
        name="deploy bot",
        scopes=["read", "write"],
        project_ids=[PRJ],
        environments=["production"],
        allowed_ips=["127.0.0.1/8", "::1/128"],
        expires_at=expires.isoformat().replace("+00:00", "Z"),
    )
    assert secret.startswith("sk_live_") and key["object"] == "api_key" and key["mode"] == "live"
    assert key["hint"] == f"{secret[:8]}…{secret[-4:]}" and key["age_seconds"] == 0
    assert key["allowed_ips"] == ["127.0.0.0/8", "::1/128"] and key["project_ids"] == [PRJ]
    assert key["environments"] == ["production"] and key["revoked"] is None
    assert datetime.fromisoformat(key["expires_at"]) == expires

    with stack.client(secret) as own:
        me = own.get("/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["data"]["key_id"] == key["id"]

    got = live.get(f"/v1/keys/{key['id']}")
    assert got.status_code == 200 and got.headers["etag"] == '"1"'
    assert secret not in got.text and "secret" not in got.json()["data"]
    # The key's use is recorded in the background.
    wait_until(lambda: live.get(f"/v1/keys/{key['id']}").json()["data"]["last_used"], timeout=5.0)
    listed = live.get("/v1/keys", params={"limit": 100})
    assert key["id"] in [k["id"] for k in listed.json()["data"]] and secret not in listed.text
    assert stack.live_key not in listed.text

    patched = live.patch(
        f"/v1/keys/{key['id']}", json={"name": "renamed", "scopes": ["read"], "project_ids": None}
    )
    assert patched.status_code == 200, patched.text
    data = patched.json()["data"]
    assert (data["name"], data["scopes"], data["project_ids"]) == ("renamed", ["read"], None)
    assert data["environments"] == ["production"] and patched.headers["etag"] == '"2"'

    revoked = live.delete(f"/v1/keys/{key['id']}")
    assert revoked.status_code == 200 and revoked.json()["data"]["revoked"] is not None
    with stack.client(secret) as own:
        refused_within(own, "api_key_revoked")
    problem(live.patch(f"/v1/keys/{key['id']}", json={"name": "x"}), 409, "key_revoked")
    inactive = live.get("/v1/keys", params={"revoked": "false", "limit": 100}).json()["data"]
    assert key["id"] not in [k["id"] for k in inactive]
    # Neither the secret nor its hash was ever logged by any process.
    logs = stack.stderr_path.read_text() + stack.stdout_path.read_text()
    assert secret not in logs and keys.hash_secret(secret) not in logs


def test_rotation_keeps_the_old_secret_for_the_overlap(stack: Stack, live: httpx.Client) -> None:
    first, key = create_key(live)
    rotated = live.post(f"/v1/keys/{key['id']}/rotate", json={"overlap_seconds": 3600})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["data"]["secret"]
    assert second != first and rotated.json()["data"]["hint"] == f"{second[:8]}…{second[-4:]}"
    assert len(rotated.json()["data"]["secrets"]) == 2
    with stack.client(first) as old, stack.client(second) as new:
        assert new.get("/v1/me").status_code == 200
        assert old.get("/v1/me").status_code == 200
        # Overlap 0: the secret in use stops at once; the new one works.
        third = live.post(f"/v1/keys/{key['id']}/rotate", json={"overlap_seconds": 0}).json()["data"]
        refused_within(new, "key_expired")
        refused_within(old, "key_expired")
        with stack.client(third["secret"]) as newest:
            assert newest.get("/v1/me").status_code == 200
    assert secret_free(live.get(f"/v1/keys/{key['id']}"), first, second, third["secret"])
    # No body means the default overlap (one day).
    default = live.post(f"/v1/keys/{key['id']}/rotate")
    assert default.status_code == 200, default.text
    problem(
        live.post(f"/v1/keys/{key['id']}/rotate", json={"overlap_seconds": 10**9}), 422, "validation_failed"
    )


def secret_free(response: httpx.Response, *secrets: str) -> bool:
    return response.status_code == 200 and not any(s in response.text for s in secrets)


def test_expiry_set_in_the_past_ends_the_key_within_a_second(stack: Stack, live: httpx.Client) -> None:
    secret, key = create_key(live)
    with stack.client(secret) as own:
        assert own.get("/v1/me").status_code == 200  # now cached by the gateway
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        assert live.patch(f"/v1/keys/{key['id']}", json={"expires_at": past}).status_code == 200
        refused_within(own, "key_expired")
        assert live.patch(f"/v1/keys/{key['id']}", json={"expires_at": None}).status_code == 200
        wait_until(lambda: own.get("/v1/me").status_code == 200, timeout=1.0)


def test_another_tenants_keys_are_not_found(
    stack: Stack, live: httpx.Client, other_live: httpx.Client, other: dict[str, Any]
) -> None:
    _, mine = create_key(live)
    assert other["id"].startswith("acct_") and other["id"] != stack.account_id
    for method, path, body in [
        ("GET", f"/v1/keys/{mine['id']}", None),
        ("PATCH", f"/v1/keys/{mine['id']}", {"name": "x"}),
        ("DELETE", f"/v1/keys/{mine['id']}", None),
        ("POST", f"/v1/keys/{mine['id']}/rotate", {"overlap_seconds": 0}),
    ]:
        problem(other_live.request(method, path, json=body), 404, "key_not_found")
    theirs = other_live.get("/v1/keys", params={"limit": 100}).json()["data"]
    assert mine["id"] not in [k["id"] for k in theirs]
    assert {k["account"] for k in theirs} == {other["id"]}
    assert live.get(f"/v1/keys/{mine['id']}").json()["data"]["revoked"] is None


def test_a_test_key_sees_only_test_keys(stack: Stack, live: httpx.Client, test_mode: httpx.Client) -> None:
    _, live_key = create_key(live)
    problem(test_mode.get(f"/v1/keys/{live_key['id']}"), 404, "key_not_found")
    problem(test_mode.delete(f"/v1/keys/{live_key['id']}"), 404, "key_not_found")
    secret, test_key = create_key(test_mode)
    assert secret.startswith("sk_test_") and test_key["mode"] == "test"
    modes = {k["mode"] for k in test_mode.get("/v1/keys", params={"limit": 100}).json()["data"]}
    assert modes == {"test"}
    problem(live.get(f"/v1/keys/{test_key['id']}"), 404, "key_not_found")


def test_a_key_cannot_grant_more_than_it_holds(stack: Stack, live: httpx.Client) -> None:
    admin_secret, _ = create_key(live, scopes=["read", "admin"], project_ids=[PRJ])
    reader_secret, reader = create_key(live, scopes=["read"])
    with stack.client(admin_secret) as narrow, stack.client(reader_secret) as plain:
        body = problem(
            narrow.post("/v1/keys", json={"name": "x", "scopes": ["write"]}), 403, "scope_not_held"
        )
        assert "write" in body["detail"]
        problem(
            narrow.post(
                "/v1/keys", json={"name": "x", "scopes": ["read"], "project_ids": ["prj_" + "b" * 26]}
            ),
            403,
            "scope_not_held",
        )
        # Left out, the restriction is inherited; lifting it later is widening too.
        _, child = create_key(narrow, scopes=["read"])
        assert child["project_ids"] == [PRJ]
        problem(narrow.patch(f"/v1/keys/{child['id']}", json={"project_ids": None}), 403, "scope_not_held")
        # An unrestricted key cannot be rotated (its new secret taken) by a restricted one.
        problem(narrow.post(f"/v1/keys/{reader['id']}/rotate"), 403, "scope_not_held")
        body = problem(plain.get("/v1/keys"), 403, "insufficient_scope")
        assert "admin" in body["detail"]
        problem(plain.post("/v1/keys", json={"name": "x", "scopes": ["read"]}), 403, "insufficient_scope")


def test_a_short_lived_token_cannot_manage_keys(live: httpx.Client, anon: httpx.Client) -> None:
    made = live.post("/v1/tokens", json={"ttl_seconds": 60})
    assert made.status_code == 201, made.text
    token = {"Authorization": f"Bearer {made.json()['data']['token']}"}
    problem(anon.get("/v1/keys", headers=token), 403, "token_not_allowed")
    problem(
        anon.post("/v1/keys", headers=token, json={"name": "x", "scopes": ["read"]}), 403, "token_not_allowed"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["root"]}, "scopes"),
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": ["read"], "allowed_ips": ["10.0.0.0/8", "nope"]}, "allowed_ips[1]"),
        ({"name": "x", "scopes": ["read"], "project_ids": ["web"]}, "project_ids[0]"),
        ({"name": "x", "scopes": ["read"], "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"name": "x", "scopes": ["read"], "secret": "sk_live_" + "a" * 40}, "secret"),
        ({"name": "x", "scopes": ["read"], "mode": "test"}, "mode"),
    ],
)
def test_bodies_are_validated(live: httpx.Client, body: dict[str, Any], field: str) -> None:
    errors = problem(live.post("/v1/keys", json=body), 422, "validation_failed")["errors"]
    assert any(e["field"].startswith(field) for e in errors), errors


def test_list_paginates_newest_first(test_mode: httpx.Client) -> None:
    made = [create_key(test_mode, name=f"page{i}")[1]["id"] for i in range(3)]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = test_mode.get("/v1/keys", params=params).json()
        seen += [k["id"] for k in page["data"]]
        if not page["meta"]["has_more"]:
            assert page["meta"]["next_cursor"] is None
            break
        params["cursor"] = page["meta"]["next_cursor"]
    assert seen[:3] == made[::-1] and len(seen) == len(set(seen))
    problem(test_mode.get("/v1/keys", params={"cursor": "garbage"}), 400, "invalid_cursor")
    problem(test_mode.get("/v1/keys", params={"limit": 0}), 422, "validation_failed")
