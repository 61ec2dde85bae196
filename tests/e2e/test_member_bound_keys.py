"""Member-bound keys on webhooks and deployments, through the running stack: a key bound to a
member sees a project's endpoints and deployments only on a project its member has a role on,
and a project it may not see is 404 on every route (as the project routes answer), never a
peek at another project's data. The services know no teams; the gateway asks projects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from httpx_sse import connect_sse

from stratus_testing import Stack, wait_until

from .conftest import problem
from .test_api_project_access import members_path, new_key, new_member, new_project

UNKNOWN_WEBHOOK = "whk_" + "a" * 26
UNKNOWN_DEPLOYMENT = "dep_" + "a" * 26
UNKNOWN_DELIVERY = "dlv_" + "a" * 26
RECEIVER = "http://127.0.0.1:9/hooks"  # nobody listens: deliveries just fail and retry


@contextmanager
def member_key(stack: Stack, live: httpx.Client) -> Iterator[tuple[str, httpx.Client]]:
    member = new_member(live)
    with new_key(stack, live, member_id=member) as client:
        yield member, client


def hook(client: httpx.Client, project: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": RECEIVER, "events": ["*"]}
    if project is not None:
        body["project"] = project
    made = client.post("/v1/webhooks", json=body)
    assert made.status_code == 201, made.text
    return made.json()["data"]


def failed_deployment(client: httpx.Client, project: str) -> dict[str, Any]:
    """A deployment of a repository that is not there: it fails at once, and it exists."""
    build = {"repo_url": f"/nonexistent/{project}", "start_command": "true"}
    assert client.patch(f"/v1/projects/{project}", json={"build": build}).status_code == 200
    made = client.post("/v1/deployments", json={"project": project, "env": "staging"})
    assert made.status_code == 202, made.text
    return made.json()["data"]


def same_404(client: httpx.Client, method: str, real: str, unknown: str, code: str, **kw: Any) -> None:
    """`real` (there, but not for this key) answers as `unknown` (nowhere) does."""
    seen = problem(client.request(method, real, **kw), 404, code)
    nowhere = problem(client.request(method, unknown, **kw), 404, code)
    assert seen["detail"].replace(real.split("/")[3], unknown.split("/")[3]) == nowhere["detail"]


def test_webhooks_of_a_project_the_member_cannot_see_are_not_there(stack: Stack, live: httpx.Client) -> None:
    other = new_project(live)  # the member has no role on it
    theirs = hook(live, other["id"])
    account_wide = hook(live, None)
    with member_key(stack, live) as (_, key):
        # Create: on that project, 404 as the project routes answer; without a project, refused.
        problem(
            key.post("/v1/webhooks", json={"url": RECEIVER, "events": ["*"], "project": other["id"]}),
            404,
            "project_not_found",
        )
        problem(key.post("/v1/webhooks", json={"url": RECEIVER, "events": ["*"]}), 422, "validation_failed")
        # List: a member-bound key reads endpoints one by one, so the list names none.
        listed = problem(key.get("/v1/webhooks", params={"limit": 100}), 422, "validation_failed")
        assert theirs["id"] not in str(listed) and account_wide["id"] not in str(listed)
        # Every route of an endpoint it may not see: 404, like an id that exists nowhere.
        delivery = wait_until(
            lambda: live.get(f"/v1/webhooks/{theirs['id']}/deliveries").json()["data"],
            timeout=20.0,
            message="a delivery of the project's endpoint",
        )[0]["id"]
        for found in (theirs, account_wide):
            base, nowhere = f"/v1/webhooks/{found['id']}", f"/v1/webhooks/{UNKNOWN_WEBHOOK}"
            for method, suffix, body in (
                ("GET", "", None),
                ("PATCH", "", {"description": "pwned"}),
                ("DELETE", "", None),
                ("POST", "/rotate-secret", {"grace_seconds": 0}),
                ("POST", "/test", None),
                ("POST", "/redeliver", {"delivery_id": delivery}),
                ("GET", "/deliveries", None),
                ("GET", f"/deliveries/{delivery}", None),
            ):
                kw = {"json": body} if body is not None else {}
                same_404(key, method, base + suffix, nowhere + suffix, "webhook_not_found", **kw)
    for found in (theirs, account_wide):  # untouched
        shown = live.get(f"/v1/webhooks/{found['id']}").json()["data"]
        assert (shown["description"], shown["version"], shown["status"]) == ("", 1, "enabled")


def test_a_member_works_with_its_projects_endpoints_only(stack: Stack, live: httpx.Client) -> None:
    other = new_project(live)
    with member_key(stack, live) as (_, key):
        mine = new_project(key)  # its member owns it
        made = hook(key, mine["id"])
        assert made["project"] == mine["id"] and made["secret"]
        assert key.get(f"/v1/webhooks/{made['id']}").status_code == 200
        assert key.get(f"/v1/webhooks/{made['id']}/deliveries").status_code == 200
        # It may not point its endpoint at a project it cannot see, nor widen it to the account.
        moved = key.patch(f"/v1/webhooks/{made['id']}", json={"project": other["id"]})
        problem(moved, 404, "project_not_found")
        widened = key.patch(f"/v1/webhooks/{made['id']}", json={"project": None})
        problem(widened, 422, "validation_failed")
        assert live.get(f"/v1/webhooks/{made['id']}").json()["data"]["project"] == mine["id"]
        changed = key.patch(f"/v1/webhooks/{made['id']}", json={"description": "mine"})
        assert changed.status_code == 200, changed.text
        assert key.delete(f"/v1/webhooks/{made['id']}").status_code == 200


def test_deployments_of_a_project_the_member_cannot_see_are_not_there(
    stack: Stack, live: httpx.Client
) -> None:
    other = new_project(live)
    theirs = failed_deployment(live, other["id"])
    with member_key(stack, live) as (_, key):
        problem(key.get("/v1/deployments", params={"project": other["id"]}), 404, "project_not_found")
        listed = problem(key.get("/v1/deployments", params={"limit": 100}), 422, "validation_failed")
        assert theirs["id"] not in str(listed)
        problem(
            key.post("/v1/deployments", json={"project": other["id"], "env": "staging"}),
            404,
            "project_not_found",
        )
        base, nowhere = f"/v1/deployments/{theirs['id']}", f"/v1/deployments/{UNKNOWN_DEPLOYMENT}"
        for method, suffix in (("GET", ""), ("GET", "/logs"), ("POST", "/cancel"), ("POST", "/rollback")):
            same_404(key, method, base + suffix, nowhere + suffix, "deployment_not_found")
        with connect_sse(key, "GET", f"{base}/logs") as source:
            assert source.response.status_code == 404
            source.response.read()
            assert source.response.json()["code"] == "deployment_not_found"
    assert live.get(base).json()["data"]["status"] != "canceled"
    assert [d["id"] for d in live.get("/v1/deployments", params={"project": other["id"]}).json()["data"]] == [
        theirs["id"]
    ]


def test_a_viewer_reads_deployments_and_a_developer_acts(stack: Stack, live: httpx.Client) -> None:
    project = new_project(live)
    made = failed_deployment(live, project["id"])
    with member_key(stack, live) as (member, key):
        assert live.put(members_path(project["id"], member), json={"role": "viewer"}).status_code == 200
        listed = key.get("/v1/deployments", params={"project": project["id"]})
        assert listed.status_code == 200, listed.text
        assert [d["id"] for d in listed.json()["data"]] == [made["id"]]
        assert key.get(f"/v1/deployments/{made['id']}").status_code == 200
        assert key.get(f"/v1/deployments/{made['id']}/logs").status_code == 200
        problem(
            key.post("/v1/deployments", json={"project": project["id"], "env": "staging"}),
            403,
            "insufficient_role",
        )
        problem(key.post(f"/v1/deployments/{made['id']}/cancel"), 403, "insufficient_role")
        assert live.put(members_path(project["id"], member), json={"role": "developer"}).status_code == 200
        deployed = key.post("/v1/deployments", json={"project": project["id"], "env": "staging"})
        assert deployed.status_code == 202, deployed.text
        # A role taken away takes the project's deployments with it.
        assert live.delete(members_path(project["id"], member)).status_code == 200
        problem(key.get(f"/v1/deployments/{made['id']}"), 404, "deployment_not_found")
        problem(key.get("/v1/deployments", params={"project": project["id"]}), 404, "project_not_found")
