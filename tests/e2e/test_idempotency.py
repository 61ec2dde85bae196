"""`Idempotency-Key` through the whole stack: replays are byte-identical, a used key cannot carry
another request, bad keys are 400, answers worth retrying are not stored, 100 concurrent creates
over two gateways make one project, and a gateway killed after forwarding a create does not make
a retry through another gateway create a second one."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import pytest

from stratus_bus import Envelope
from stratus_contracts import projects
from stratus_gateway.idempotency import BUCKET, kv_key
from stratus_testing import Stack, wait_for

from .conftest import problem

REPLAYED = "idempotent-replayed"


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def projects_named(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    response = client.get("/v1/projects", params={"name": name})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def same_answer(first: httpx.Response, again: httpx.Response) -> None:
    assert again.status_code == first.status_code
    assert again.content == first.content  # byte for byte, the first request's request_id included
    for header in ("content-type", "location", "etag"):
        assert again.headers.get(header) == first.headers.get(header)
    assert again.headers[REPLAYED] == "true" and REPLAYED not in first.headers
    assert again.headers["x-request-id"] != first.headers["x-request-id"]


def test_a_repeat_replays_the_first_answer_byte_for_byte(live: httpx.Client) -> None:
    key = new_key()
    first = live.post("/v1/projects", json={"name": "idem-replay"}, headers=key)
    assert first.status_code == 201, first.text
    same_answer(first, live.post("/v1/projects", json={"name": "idem-replay"}, headers=key))
    assert len(projects_named(live, "idem-replay")) == 1
    # A client error is an answer too: a repeat gets the same 409, not a fresh decision.
    key = new_key()
    taken = live.post("/v1/projects", json={"name": "idem-replay"}, headers=key)
    problem(taken, 409, "project_name_taken")
    same_answer(taken, live.post("/v1/projects", json={"name": "idem-replay"}, headers=key))


def test_updates_and_deletes_are_replayed_too(live: httpx.Client) -> None:
    project = live.post("/v1/projects", json={"name": "idem-writes"}).json()["data"]
    path = f"/v1/projects/{project['id']}"
    for method, body in [("PATCH", {"description": "once"}), ("DELETE", None)]:
        key = new_key()
        first = live.request(method, path, json=body, headers=key)
        assert first.status_code == 200, first.text
        same_answer(first, live.request(method, path, json=body, headers=key))
    assert live.get(path).status_code == 404


def test_another_request_under_a_used_key_is_422(stack: Stack, live: httpx.Client) -> None:
    key = new_key()
    assert live.post("/v1/projects", json={"name": "idem-fp"}, headers=key).status_code == 201
    for method, path, body in [
        ("POST", "/v1/projects", {"name": "idem-fp-2"}),  # another body
        ("POST", "/v1/projects?x=1", {"name": "idem-fp"}),  # another query
        ("POST", "/v1/members", {"email": "fp@example.com"}),  # another path
    ]:
        problem(live.request(method, path, json=body, headers=key), 422, "idempotency_key_reused")
    with stack.client(stack.test_key) as test_mode:
        # Keys are scoped to an account and mode: test mode has its own.
        made = test_mode.post("/v1/projects", json={"name": "idem-fp"}, headers=key)
        assert made.status_code == 201 and REPLAYED not in made.headers
    assert [p["name"] for p in projects_named(live, "idem-fp-2")] == []


@pytest.mark.parametrize(
    "headers",
    [
        [("Idempotency-Key", "")],
        [("Idempotency-Key", "k" * 256)],
        [("Idempotency-Key", "caf\u00e9".encode())],
        [("Idempotency-Key", b"tab\there")],
        [("Idempotency-Key", "one"), ("Idempotency-Key", "two")],
    ],
    ids=["empty", "too-long", "not-ascii", "control-character", "two-headers"],
)
def test_invalid_keys_are_400(live: httpx.Client, headers: list[tuple[str, Any]]) -> None:
    name = f"idem-bad-{uuid.uuid4().hex[:8]}"
    problem(live.post("/v1/projects", json={"name": name}, headers=headers), 400, "idempotency_key_invalid")
    assert projects_named(live, name) == []


def test_an_oversized_body_is_413_and_frees_nothing(live: httpx.Client) -> None:
    key = {**new_key(), "Content-Type": "application/json"}
    huge = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    problem(live.post("/v1/projects", content=huge, headers=key), 413, "payload_too_large")
    made = live.post("/v1/projects", json={"name": "idem-after-413"}, headers=key)
    assert made.status_code == 201 and REPLAYED not in made.headers


def test_the_longest_key_and_reads_with_a_key_are_fine(live: httpx.Client) -> None:
    longest = {"Idempotency-Key": "~" * 255}
    assert live.post("/v1/projects", json={"name": "idem-longest"}, headers=longest).status_code == 201
    # Only writes are idempotent: a read with any key value is just a read.
    assert live.get("/v1/projects", headers={"Idempotency-Key": ""}).status_code == 200


def test_auth_failures_are_not_stored(stack: Stack, live: httpx.Client) -> None:
    key = new_key()
    body = {"name": "idem-auth"}
    with stack.client("sk_live_" + "x" * 43) as unknown:
        problem(unknown.post("/v1/projects", json=body, headers=key), 401, "invalid_api_key")
    read_only = live.post("/v1/keys", json={"name": "ro", "scopes": ["read"]}).json()["data"]["secret"]
    with stack.client(read_only) as reader:
        problem(reader.post("/v1/projects", json=body, headers=key), 403, "insufficient_scope")
    restricted = live.post(
        "/v1/keys", json={"name": "narrow", "scopes": ["read", "write"], "project_ids": ["prj_" + "a" * 26]}
    ).json()["data"]["secret"]
    with stack.client(restricted) as narrow:
        # A 403 from the service itself: decided again on every retry, never replayed.
        for _ in range(2):
            refused = narrow.post("/v1/projects", json=body, headers=key)
            problem(refused, 403, "key_restricted")
            assert REPLAYED not in refused.headers
    created = live.post("/v1/projects", json=body, headers=key)
    assert created.status_code == 201 and REPLAYED not in created.headers


def test_a_timed_out_write_is_not_stored_and_its_retry_gets_the_services_reply(
    stack: Stack, live: httpx.Client
) -> None:
    """504: the gateway gave up, but the command may still be applied. The retry is forwarded
    again and the service answers from its own record: one project, the first attempt's."""
    key = new_key()
    pids = stack.service_pids("projects")  # every replica
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        problem(live.post("/v1/projects", json={"name": "idem-late"}, headers=key), 504, "service_timeout")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    retried = live.post("/v1/projects", json={"name": "idem-late"}, headers=key)
    assert retried.status_code == 201, retried.text
    assert retried.headers[REPLAYED] == "true"
    [project] = projects_named(live, "idem-late")
    assert retried.json()["data"]["id"] == project["id"]
    assert live.post("/v1/projects", json={"name": "idem-late"}, headers=key).content == retried.content


async def _create_until_answered(client: httpx.AsyncClient, url: str, body: Any, key: dict[str, str]) -> Any:
    """POST; while the first request with this key runs (409 in use), ask again."""

    async def answered() -> httpx.Response | None:
        response = await client.post(f"{url}/v1/projects", json=body, headers=key)
        if response.status_code == 409 and response.json()["code"] == "idempotency_key_in_use":
            assert response.headers["retry-after"]
            return None
        return response

    return await wait_for(answered, timeout=30, interval=0.02)


@pytest.fixture
def own_key(live: httpx.Client) -> str:
    """A key of its own: a burst and its retries spend its rate limit, not the session key's."""
    created = live.post("/v1/keys", json={"name": "burst", "scopes": ["read", "write"]})
    assert created.status_code == 201, created.text
    return created.json()["data"]["secret"]


async def test_100_concurrent_identical_creates_over_two_gateways_make_one_project(
    stack: Stack, live: httpx.Client, own_key: str
) -> None:
    key, body = new_key(), {"name": "idem-burst"}
    with stack.extra_gateway() as second:
        limits = httpx.Limits(max_connections=100)
        async with stack.async_client(own_key, limits=limits) as client:
            gateways = [stack.base_url, second]
            answers = await asyncio.gather(
                *(_create_until_answered(client, gateways[i % 2], body, key) for i in range(100))
            )
    assert {a.status_code for a in answers} == {201}
    assert len({a.content for a in answers}) == 1  # every answer is the first one, byte for byte
    assert sum(REPLAYED not in a.headers for a in answers) == 1
    [project] = projects_named(live, "idem-burst")
    assert answers[0].json()["data"]["id"] == project["id"]


async def _stored_record(stack: Stack, key: str) -> bytes:
    nc = await nats.connect(stack.nats_url.split(","))
    try:
        kv = await nc.jetstream().key_value(BUCKET)
        return (await kv.get(kv_key(stack.account_id, "live", key))).value or b""
    finally:
        await nc.close()


async def _forget(stack: Stack, key: str) -> None:
    """Lose the gateway's record, as 24 hours or a lost KV volume would."""
    nc = await nats.connect(stack.nats_url.split(","))
    try:
        kv = await nc.jetstream().key_value(BUCKET)
        await kv.purge(kv_key(stack.account_id, "live", key))
    finally:
        await nc.close()


def _without_secret(response: httpx.Response) -> dict[str, Any]:
    document = response.json()
    document["data"].pop("secret")
    return document


def test_a_new_keys_secret_is_shown_once_and_never_stored(stack: Stack, live: httpx.Client) -> None:
    key = new_key()
    body = {"name": "idem-key", "scopes": ["read"]}
    first = live.post("/v1/keys", json=body, headers=key)
    assert first.status_code == 201, first.text
    secret = first.json()["data"]["secret"]
    assert secret.startswith("sk_live_")
    assert secret.encode() not in asyncio.run(_stored_record(stack, key["Idempotency-Key"]))
    again = live.post("/v1/keys", json=body, headers=key)
    assert again.status_code == 201 and again.headers[REPLAYED] == "true"
    assert again.json()["data"]["secret"] is None
    assert _without_secret(again) == _without_secret(first)
    # With the gateway's record gone, identity answers from its own: the same key, and not the
    # secret the gateway made for this attempt (it belongs to no key).
    asyncio.run(_forget(stack, key["Idempotency-Key"]))
    late = live.post("/v1/keys", json=body, headers=key)
    assert late.status_code == 201 and late.headers[REPLAYED] == "true"
    assert late.json()["data"]["secret"] is None
    assert late.json()["data"]["id"] == first.json()["data"]["id"]
    named = [k for k in live.get("/v1/keys", params={"limit": 100}).json()["data"] if k["name"] == "idem-key"]
    assert len(named) == 1
    with stack.client(secret) as holder:
        assert holder.get("/v1/me").status_code == 200


async def test_a_gateway_killed_after_forwarding_does_not_make_a_retry_create_twice(tmp_path: Path) -> None:
    """Gateway A forwards a create and dies before answering; the service applies it later. The
    client retries through gateway B: 409 while A's lease runs, then the service's stored reply."""
    key, body = new_key(), {"name": "idem-crash"}
    # Time enough to kill A before it would answer 504 itself, and a lease covering that.
    env = {"STRATUS_REQUEST_TIMEOUT": "4", "STRATUS_IDEMPOTENCY_LEASE": "10"}
    with Stack(tmp_path / "data", env=env) as stack, stack.extra_gateway() as gateway_b:
        nc = await nats.connect(stack.nats_url)
        forwarded = asyncio.Event()

        async def seen(msg: Any) -> None:
            command = msgspec.msgpack.decode(msg.data, type=Envelope[projects.CreateProject]).body
            if command.caller.idempotency_key == key["Idempotency-Key"]:
                forwarded.set()

        await nc.subscribe(projects.CreateProject.subject, cb=seen)
        await nc.flush()
        service = stack.service_pid("projects")
        async with stack.async_client(stack.live_key) as client:
            os.kill(service, signal.SIGSTOP)
            try:
                sent = asyncio.create_task(
                    client.post(f"{stack.base_url}/v1/projects", json=body, headers=key)
                )
                await asyncio.wait_for(forwarded.wait(), timeout=10)
                os.kill(stack.service_pid("gateway"), signal.SIGKILL)
                with pytest.raises(httpx.TransportError):
                    await sent  # gateway A never answers
            finally:
                os.kill(service, signal.SIGCONT)
            await nc.close()
            first_retry = await client.post(f"{gateway_b}/v1/projects", json=body, headers=key)
            problem(first_retry, 409, "idempotency_key_in_use")
            answer = await _create_until_answered(client, gateway_b, body, key)
            assert answer.status_code == 201, answer.text
            assert answer.headers[REPLAYED] == "true"  # the service's record of A's command
            listed = await client.get(f"{gateway_b}/v1/projects", params={"name": "idem-crash"})
            assert [p["id"] for p in listed.json()["data"]] == [answer.json()["data"]["id"]]
            # B stored the answer: from now on it is replayed from the KV record.
            again = await client.post(f"{gateway_b}/v1/projects", json=body, headers=key)
            assert again.content == answer.content


def test_openapi_declares_the_header_on_every_write(anon: httpx.Client) -> None:
    spec = anon.get("/openapi.json").json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
            expected = path.startswith("/v1/") and method in {"post", "put", "patch", "delete"}
            assert ("Idempotency-Key" in names) == expected, (method, path)
