"""Webhook endpoints through the API: made with a signing secret shown once, read without it,
changed, rotated with a grace period, deleted; URLs through the SSRF guard; secrets sealed at
rest; replays never show a secret."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from stratus_testing import Stack
from tests.e2e.conftest import problem

RECEIVER = "http://127.0.0.1:9/hooks"  # loopback: the local stack allows it (and says so)


def make(client: httpx.Client, **body: object) -> httpx.Response:
    return client.post("/v1/webhooks", json={"url": RECEIVER, "events": ["project.created"], **body})


def test_an_endpoint_is_made_read_changed_rotated_and_deleted(live: httpx.Client) -> None:
    made = make(live, description="ci")
    assert made.status_code == 201, made.text
    hook = made.json()["data"]
    secret = hook["secret"]
    assert secret.startswith("whsec_") and hook["secret_hint"] == secret[-4:]
    assert (
        hook["id"].startswith("whk_")
        and hook["status"] == "enabled"
        and hook["events"] == ["project.created"]
    )
    assert made.headers["location"] == f"/v1/webhooks/{hook['id']}"

    got = live.get(f"/v1/webhooks/{hook['id']}")
    assert got.status_code == 200 and "secret" not in got.json()["data"]
    assert secret not in got.text
    listed = live.get("/v1/webhooks", params={"limit": 100}).json()["data"]
    assert hook["id"] in [h["id"] for h in listed] and secret not in str(listed)

    changed = live.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"events": ["*"], "status": "disabled"},
        headers={"If-Match": got.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["events"] == ["*"] and changed.json()["data"]["status"] == "disabled"
    stale = live.patch(
        f"/v1/webhooks/{hook['id']}", json={"description": "x"}, headers={"If-Match": got.headers["etag"]}
    )
    problem(stale, 412, "precondition_failed")

    before = datetime.now(UTC)
    rotated = live.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={"grace_seconds": 3600})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["data"]
    assert new["secret"].startswith("whsec_") and new["secret"] != secret
    expires = datetime.fromisoformat(new["previous_secret_expires"])
    assert before + timedelta(seconds=3590) < expires < datetime.now(UTC) + timedelta(seconds=3610)

    gone = live.delete(f"/v1/webhooks/{hook['id']}")
    assert gone.status_code == 200 and gone.json()["data"]["deleted"] is True
    problem(live.get(f"/v1/webhooks/{hook['id']}"), 404, "webhook_not_found")


def test_urls_and_event_types_are_checked(live: httpx.Client) -> None:
    for url in (
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/x",
        "http://metadata.google.internal/",
        "http://user:pw@example.com/hook",
        "ftp://example.com/hook",
        "http://0x7f.1/",  # loopback spelled in hex: allowed here only as loopback… see below
    ):
        response = make(live, url=url)
        if url == "http://0x7f.1/":
            # The local stack allows loopback, however it is spelled; the guard reads the spelling.
            assert response.status_code == 201, response.text
            continue
        problem(response, 422, "webhook_url_forbidden")
    problem(make(live, events=["no.such_type"]), 422, "validation_failed")
    problem(make(live, events=[]), 422, "validation_failed")
    problem(make(live, project="prj_" + "a" * 26), 404, "project_not_found")


def test_a_replay_never_shows_the_secret(live: httpx.Client) -> None:
    key = str(uuid.uuid4())
    first = live.post(
        "/v1/webhooks", json={"url": RECEIVER, "events": ["*"]}, headers={"Idempotency-Key": key}
    )
    again = live.post(
        "/v1/webhooks", json={"url": RECEIVER, "events": ["*"]}, headers={"Idempotency-Key": key}
    )
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert first.json()["data"]["secret"] and again.json()["data"]["secret"] is None


def test_secrets_are_sealed_at_rest_and_out_of_events(stack: Stack, live: httpx.Client) -> None:
    hook = make(live).json()["data"]
    secret = hook["secret"].encode()
    key_part = hook["secret"].removeprefix("whsec_").encode()
    deadline = time.monotonic() + 20
    while not (feed := live.get("/v1/events", params={"type": "webhook.created"}).json()["data"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert all(b"whsec_" not in str(e).encode() for e in feed)
    for path in stack.data_dir.rglob("*"):
        if path.is_file() and path.name.startswith(("webhooks-", "audit-")):
            data = path.read_bytes()
            assert secret not in data and key_part not in data, path
