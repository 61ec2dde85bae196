"""`GET /v1/event-types` and `GET /asyncapi.json` through a running stack, and what they describe
checked against the wire: a real event on the `EVENTS` stream and a real query over NATS, read and
validated with nothing but the published schemas (as another team's service would)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import datetime
from typing import Any

import httpx
import msgspec
import nats
import nats.js.errors
import pytest

from stratus_contracts import asyncapi
from stratus_contracts.events import catalogue
from stratus_testing import Stack, wait_until

from .conftest import problem


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> None:
    """A small JSON Schema check of the keywords these schemas use (type, enum, const, anyOf,
    properties, required, additionalProperties, items, $ref). `datetime` passes as a string:
    MessagePack carries times as timestamps, which a decoder gives as datetimes."""
    if "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        _check(value, node, root, where)
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _check(value, option, root, where)
                break
            except AssertionError as e:
                errors.append(str(e))
        else:
            raise AssertionError(f"{where}: matches no anyOf option: {errors}")
    if "const" in schema:
        assert value == schema["const"], where
    if "enum" in schema:
        assert value in schema["enum"], (where, value)
    kinds = {
        "object": dict,
        "array": (list, tuple),
        "string": (str, datetime),
        "integer": int,
        "boolean": bool,
        "null": type(None),
    }
    kind = schema.get("type")
    if kind is not None:
        assert isinstance(value, kinds[kind]), (where, kind, value)
        assert not (kind == "integer" and isinstance(value, bool)), where
    if kind == "object":
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"{where}.{name} is required"
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], root, f"{where}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                _check(item, schema["additionalProperties"], root, f"{where}.{name}")
            else:
                # msgspec Structs decode with unknown fields ignored, but a published field
                # the schema does not name is a schema that is behind the code.
                raise AssertionError(f"{where}.{name} is not in the schema")
    if kind == "array" and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _check(item, schema["items"], root, f"{where}[{i}]")
    if kind == "array" and isinstance(schema.get("items"), list):
        assert len(value) == len(schema["items"]), where
        for i, (item, item_schema) in enumerate(zip(value, schema["items"], strict=True)):
            _check(item, item_schema, root, f"{where}[{i}]")


def test_the_list_has_every_catalogued_type_with_a_schema(live: httpx.Client) -> None:
    response = live.get("/v1/event-types")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["error"] is None
    assert body["meta"]["has_more"] is False and body["meta"]["next_cursor"] is None
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    assert [t["name"] for t in body["data"]] == sorted(catalogue())
    for item in body["data"]:
        assert set(item) == {"object", "name", "description", "subject", "schema"}
        assert item["object"] == "event_type" and item["description"]
        t = catalogue()[item["name"]]
        assert item["subject"] == t.subject("*", "*")
        schema = item["schema"]
        assert schema["type"] == "object" and schema["title"] == t.data.__name__
        assert list(schema["properties"]) == [f.encode_name for f in msgspec.structs.fields(t.data)]
        # Usable alone: every reference points into its own `$defs`.
        for ref in re.findall(r'"\$ref": ?"([^"]+)"', json.dumps(schema)):
            name = ref.removeprefix("#/$defs/")
            assert ref != name and name in schema["$defs"], (item["name"], ref)


def test_one_type_by_name(live: httpx.Client) -> None:
    listed = {t["name"]: t for t in live.get("/v1/event-types").json()["data"]}
    response = live.get("/v1/event-types/deployment.succeeded")
    assert response.status_code == 200, response.text
    one = response.json()["data"]
    assert one == listed["deployment.succeeded"]
    assert one["subject"] == "evt.*.*.deployment.succeeded"
    assert {"status", "url", "sha"} <= set(one["schema"]["properties"])
    assert live.get("/v1/event-types/env.vars.changed").json()["data"]["subject"] == (
        "evt.*.*.env.vars_changed"
    )


def test_an_unknown_name_is_a_404_problem(live: httpx.Client) -> None:
    body = problem(live.get("/v1/event-types/deployment.exploded"), 404, "event_type_not_found")
    assert "deployment.exploded" in body["detail"]
    problem(live.get("/v1/event-types/" + "x" * 101), 422, "validation_failed")


def test_the_catalogue_needs_read_scope(stack: Stack, live: httpx.Client, anon: httpx.Client) -> None:
    problem(anon.get("/v1/event-types"), 401, "missing_api_key")
    writer = live.post("/v1/keys", json={"name": "writer", "scopes": ["write"]}).json()["data"]["secret"]
    with stack.client(writer) as client:
        problem(client.get("/v1/event-types"), 403, "insufficient_scope")
    token = live.post("/v1/tokens", json={"scopes": ["read"], "ttl_seconds": 60}).json()["data"]["token"]
    with stack.client(token) as client:
        assert client.get("/v1/event-types/project.created").status_code == 200


def test_the_routes_are_in_the_openapi_document(anon: httpx.Client) -> None:
    spec = anon.get("/openapi.json").json()
    for path in ("/v1/event-types", "/v1/event-types/{name}"):
        op = spec["paths"][path]["get"]
        assert op["tags"] == ["events"]
        assert (op["x-required-scope"], op["x-tokens-allowed"]) == ("read", True)
    assert "events" in [t["name"] for t in spec["tags"]]


def test_asyncapi_json_is_served_without_a_key(anon: httpx.Client) -> None:
    response = anon.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    served = response.json()
    assert served == asyncapi.document()
    assert served["asyncapi"] == "3.0.0" and served["channels"] and served["operations"]


@pytest.fixture(scope="module")
def spec(stack: Stack) -> dict[str, Any]:
    return httpx.get(f"{stack.base_url}/asyncapi.json", trust_env=False).json()


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> Any:
    """Follow `$ref`s (a channel's message refers to a component message) to the object."""
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _address_pattern(channel: dict[str, Any]) -> re.Pattern[str]:
    """The channel's address as a regex: each `{parameter}` one subject token."""
    parts = re.split(r"\{(\w+)\}", channel["address"])
    regex = "".join(re.escape(p) if i % 2 == 0 else rf"(?P<{p}>[^.]+)" for i, p in enumerate(parts))
    return re.compile(f"^{regex}$")


def test_a_published_event_is_what_the_document_says(stack: Stack, live: httpx.Client, spec: dict) -> None:
    name = f"described-{uuid.uuid4().hex[:8]}"
    project = live.post("/v1/projects", json={"name": name})
    assert project.status_code == 201, project.text
    project_id = project.json()["data"]["id"]
    channel = spec["channels"]["evt-project-created"]
    # Read the stream the way the document says: its subject pattern, any account and mode.
    filter_subject = channel["address"].replace("{mode}", "*").replace("{account}", "*")

    async def find() -> Any:
        nc = await nats.connect(stack.nats_url.split(","))
        try:
            js, seq, stream = nc.jetstream(), 1, channel["x-jetstream-stream"]
            while True:
                try:
                    msg = await js.get_msg(stream, seq, subject=filter_subject, next=True)
                except nats.js.errors.NotFoundError:
                    return None
                if json.loads(msg.data)["data"]["id"] == project_id:
                    return msg
                seq = msg.seq + 1
        finally:
            await nc.close()

    msg = wait_until(lambda: asyncio.run(find()), timeout=10, message="project.created on EVENTS")
    match = _address_pattern(channel).match(msg.subject)
    assert match, msg.subject
    assert match["mode"] in spec["components"]["parameters"]["mode"]["enum"]
    assert match["account"] == stack.account_id
    message = _resolve(spec, channel["messages"]["project-created"])
    event = json.loads(msg.data)
    _check(event, message["payload"], spec)
    assert msg.headers["Nats-Msg-Id"] == event["id"]
    # The standalone schema of `GET /v1/event-types` validates the same `data`.
    standalone = live.get("/v1/event-types/project.created").json()["data"]["schema"]
    _check(event["data"], standalone, standalone)


def test_a_query_sent_as_the_document_says_is_answered_as_it_says(
    stack: Stack, live: httpx.Client, spec: dict
) -> None:
    made = live.post("/v1/projects", json={"name": f"asked-{uuid.uuid4().hex[:8]}"})
    project_id = made.json()["data"]["id"]
    op = spec["operations"]["receive-qry-projects-get_project"]
    channel = _resolve(spec, op["channel"])
    request_message = _resolve(spec, op["messages"][0])
    assert request_message["contentType"] == "application/msgpack"
    # Only plain values: what another team's service would build from the schema alone.
    caller = {"account_id": stack.account_id, "mode": "live", "key_id": "key_" + "x" * 26}
    request = [None, None, {"caller": caller, "project_id": project_id}]
    _check(request, request_message["payload"], spec)

    async def ask() -> Any:
        nc = await nats.connect(stack.nats_url.split(","))
        try:
            return await nc.request(channel["address"], msgspec.msgpack.encode(request), timeout=5)
        finally:
            await nc.close()

    answer = msgspec.msgpack.decode(asyncio.run(ask()).data)
    reply_message = _resolve(spec, op["reply"]["messages"][0])
    _check(answer, reply_message["payload"], spec)
    assert "error" not in answer and answer["result"]["id"] == project_id
