"""The event feed (`GET /v1/events`): every public event of an account and mode as it was
published, filtered and paged, one by id, and live over SSE resumed with `Last-Event-ID`;
another tenant's and the other mode's events never show."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import connect_sse

from stratus_testing import Stack
from tests.e2e.conftest import problem


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
    return value


def events_of(client: httpx.Client, **params: Any) -> list[dict]:
    r = client.get("/v1/events", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_the_feed_lists_filters_and_pages(live: httpx.Client, test_mode: httpx.Client) -> None:
    name = f"feed-{uuid.uuid4().hex[:6]}"
    project = live.post("/v1/projects", json={"name": name}).json()["data"]
    created = wait_for(
        lambda: [e for e in events_of(live, type="project.created") if e["data"]["id"] == project["id"]]
    )
    event = created[0]
    assert event["object"] == "event" and event["id"].startswith("evt_") and event["mode"] == "live"
    assert event["data"]["name"] == name

    # Its default environments, by prefix and by project. They are two events, published one
    # after the other: the feed may have the first before the second.
    def default_envs() -> list[dict]:
        found = events_of(live, type="env.", project=project["id"])
        return found if {e["data"]["name"] for e in found} >= {"production", "staging"} else []

    envs = wait_for(default_envs)
    assert {e["data"]["name"] for e in envs} == {"production", "staging"}
    assert all(e["type"] == "env.created" for e in envs)

    one = live.get(f"/v1/events/{event['id']}")
    assert one.status_code == 200 and one.json()["data"] == event

    # Pages, newest first, by cursor: no event twice.
    first = live.get("/v1/events", params={"limit": 2}).json()
    second = live.get("/v1/events", params={"limit": 2, "cursor": first["meta"]["next_cursor"]}).json()
    ids = [e["id"] for e in first["data"] + second["data"]]
    assert len(set(ids)) == 4
    assert [e["created"] for e in first["data"]] >= sorted(e["created"] for e in first["data"])

    # The other mode does not see it.
    problem(test_mode.get(f"/v1/events/{event['id']}"), 404, "event_not_found")
    assert event["id"] not in {e["id"] for e in events_of(test_mode)}


def test_another_tenant_sees_none_of_it(stack: Stack, live: httpx.Client) -> None:
    project = live.post("/v1/projects", json={"name": f"feed-b-{uuid.uuid4().hex[:6]}"}).json()["data"]
    mine = wait_for(lambda: [e for e in events_of(live, project=project["id"])])
    made = stack.cli("accounts", "create", f"feed-tenant-{uuid.uuid4().hex[:6]}", "--json")
    assert made.returncode == 0, made.stderr
    with stack.client(json.loads(made.stdout)["keys"]["live"]) as other:
        problem(other.get(f"/v1/events/{mine[0]['id']}"), 404, "event_not_found")
        assert not {e["id"] for e in events_of(other)} & {e["id"] for e in mine}
        problem(
            other.get("/v1/events", headers={"Accept": "text/event-stream", "Last-Event-ID": mine[0]["id"]}),
            404,
            "event_not_found",
        )


def test_the_live_feed_resumes_with_last_event_id(stack: Stack, live: httpx.Client) -> None:
    seen: list[dict] = []
    opened = threading.Event()

    def follow(headers: dict[str, str], until: Callable[[list[dict]], bool]) -> None:
        with (
            stack.client(stack.live_key) as c,
            connect_sse(c, "GET", "/v1/events", headers=headers) as source,
        ):
            assert source.response.headers["content-type"].startswith("text/event-stream")
            opened.set()
            for sse in source.iter_sse():
                if sse.event and "." in sse.event:
                    seen.append({"id": sse.id, **sse.json()})
                    if until(seen):
                        return

    names = [f"live-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]

    def wanted(got: list[dict]) -> bool:
        return names[0] in {e["data"].get("name") for e in got if e["type"] == "project.created"}

    reader = threading.Thread(target=follow, args=({}, wanted))
    reader.start()
    assert opened.wait(10)
    live.post("/v1/projects", json={"name": names[0]})
    reader.join(20)
    assert not reader.is_alive(), "the live feed did not deliver the new project's event"
    assert all(e["id"].startswith("evt_") for e in seen)
    last = seen[-1]["id"]

    # While nobody listens, two more; a reconnect with Last-Event-ID gets exactly what followed.
    for name in names[1:]:
        live.post("/v1/projects", json={"name": name})
    before = len(seen)

    def done(got: list[dict]) -> bool:
        return {e["data"].get("name") for e in got[before:] if e["type"] == "project.created"} >= set(
            names[1:]
        )

    follow({"Last-Event-ID": last}, done)
    resumed = seen[before:]
    assert not {e["id"] for e in resumed} & {e["id"] for e in seen[:before]}, "a resume repeated events"
    assert len({e["id"] for e in resumed}) == len(resumed), "an event came twice"
    assert {e["data"].get("name") for e in resumed if e["type"] == "project.created"} == set(names[1:])
