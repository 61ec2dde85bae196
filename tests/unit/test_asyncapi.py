"""The AsyncAPI document of the NATS subjects (`stratus_contracts.asyncapi`): AsyncAPI 3.0's
structure, checked here by hand (no maintained Python validator of 3.0 works offline), every
`$ref` resolving, one channel per event type and per served request, and docs/asyncapi.json
generated from it. The standalone `data` schemas of `GET /v1/event-types` are checked too."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from stratus_bus.bus import Envelope
from stratus_contracts import asyncapi, services, subjects
from stratus_contracts.events import Event, catalogue, data_schema
from stratus_contracts.reply import Reply

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
# AsyncAPI 3.0: channel, operation and message ids; component keys may also have dots.
ID = re.compile(r"^[A-Za-z0-9_-]+$")
COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")
# An AsyncAPI Schema Object is JSON Schema draft-07 (plus a few keywords): none of 2020-12's own.
NOT_DRAFT_07 = {"prefixItems", "$defs", "$dynamicRef", "$anchor", "unevaluatedProperties", "dependentSchemas"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return asyncapi.document()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_docs_asyncapi_json_is_generated() -> None:
    assert DOC.read_text() == asyncapi.text(), (
        "run: uv run python -m stratus_contracts.asyncapi > docs/asyncapi.json"
    )
    assert asyncapi.document() == asyncapi.document()  # nothing in it varies between runs


def test_the_document_has_asyncapi_3_structure(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc) <= {
        "asyncapi",
        "id",
        "info",
        "servers",
        "defaultContentType",
        "channels",
        "operations",
        "components",
    }
    assert doc["info"]["title"] and doc["info"]["version"]
    for name, server in doc["servers"].items():
        assert ID.match(name) and server["protocol"] == "nats"
        for variable in re.findall(r"\{(\w+)\}", server["host"]):
            assert variable in server["variables"]
    for section in ("schemas", "messages", "parameters"):
        assert all(COMPONENT_KEY.match(k) for k in doc["components"][section]), section
    for channel_id, channel in doc["channels"].items():
        assert ID.match(channel_id)
        address = channel["address"]
        assert address is None or isinstance(address, str)
        # Every `{parameter}` of an address is declared, and nothing else is.
        named = set(re.findall(r"\{(\w+)\}", address or ""))
        assert named == set(channel.get("parameters", {})), channel_id
        assert channel["messages"] and all(ID.match(k) for k in channel["messages"])
    for op_id, op in doc["operations"].items():
        assert ID.match(op_id)
        assert op["action"] in ("send", "receive")
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        # An operation's messages are messages of its own channel (AsyncAPI 3.0 requires it).
        assert op["messages"] and all(
            m["$ref"].startswith(channel_ref + "/messages/") for m in op["messages"]
        ), op_id
        if "reply" in op:
            reply_channel = op["reply"]["channel"]["$ref"]
            assert all(m["$ref"].startswith(reply_channel + "/messages/") for m in op["reply"]["messages"])
    for message in doc["components"]["messages"].values():
        assert message["name"] and message["contentType"] and message["payload"]


def test_every_ref_resolves_and_schemas_are_draft_07(doc: dict[str, Any]) -> None:
    refs = _refs(doc)
    assert len(refs) > 200
    for ref in set(refs):
        _resolve(doc, ref)
    assert not _keys(doc["components"]) & NOT_DRAFT_07


def test_one_channel_per_event_type_carrying_the_envelope(doc: dict[str, Any]) -> None:
    types = catalogue()
    sent = {op["channel"]["$ref"] for op in doc["operations"].values() if op["action"] == "send"}
    assert len(sent) == len(types)
    envelope_fields = [f.name for f in msgspec.structs.fields(Event)]
    for name, t in types.items():
        channel = doc["channels"][f"evt-{name.replace('.', '-')}"]
        assert f"#/channels/evt-{name.replace('.', '-')}" in sent
        assert channel["address"] == t.subject("{mode}", "{account}")
        assert channel["x-jetstream-stream"] == subjects.EVENTS_STREAM
        (message_ref,) = channel["messages"].values()
        message = _resolve(doc, message_ref["$ref"])
        payload = message["payload"]
        assert message["name"] == name and message["contentType"] == "application/json"
        assert list(payload["properties"]) == envelope_fields
        assert payload["properties"]["type"]["const"] == name
        data = _resolve(doc, payload["properties"]["data"]["$ref"])
        assert list(data["properties"]) == [f.encode_name for f in msgspec.structs.fields(t.data)]
    mode = doc["components"]["parameters"]["mode"]
    assert mode["enum"] == ["live", "test"]


def _served() -> dict[str, str]:
    """subject → service of every request a service answers, as the kit subscribes them:
    its handlers' message types, its rebuild command, its on-loop handlers and its ping."""
    served = {}
    for spec in services.SERVICES:
        service = importlib.import_module(f"{spec.module}.bootstrap").SERVICE
        types = [*service.handlers(**service.dependencies()), *service.on_loop]
        if service.rebuild is not None:
            types.append(service.rebuild)
        served |= {t.subject: spec.name for t in types if getattr(t, "subject", "")}
        served[subjects.ping(spec.name)] = spec.name
    return served


def test_one_channel_per_request_a_service_answers(doc: dict[str, Any]) -> None:
    received = {
        _resolve(doc, op["channel"]["$ref"])["address"]: op
        for op in doc["operations"].values()
        if op["action"] == "receive"
    }
    served = _served()
    assert set(received) == set(served)
    for subject, op in received.items():
        assert op["bindings"]["nats"]["queue"] == subjects.queue_group(served[subject])
    by_subject = {m.subject: m for m in asyncapi.message_types()}
    create = doc["components"]["messages"]["cmd-projects-create_project"]
    assert create["contentType"] == "application/msgpack"
    # The request is the bus's `Envelope` (an array: request id, trace context, message).
    assert msgspec.structs.fields(Envelope)[2].name == "body" and Envelope.__struct_config__.array_like
    items = create["payload"]["items"]
    assert len(items) == len(msgspec.structs.fields(Envelope))
    body = _resolve(doc, items[2]["$ref"])
    assert list(body["properties"]) == [
        f.name for f in msgspec.structs.fields(by_subject["cmd.projects.create_project"])
    ]
    reply_message = doc["components"]["messages"]["cmd-projects-create_project-reply"]
    reply = _resolve(doc, reply_message["payload"]["$ref"])
    assert list(reply["properties"]) == [f.name for f in msgspec.structs.fields(Reply)]
    assert _resolve(doc, reply["properties"]["result"]["anyOf"][0]["$ref"])["title"] == "Project"
    assert doc["channels"]["reply"]["address"] is None


def test_the_document_is_json_as_served() -> None:
    assert json.loads(msgspec.json.encode(asyncapi.document())) == asyncapi.document()


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_each_data_schema_stands_alone(name: str) -> None:
    t = catalogue()[name]
    schema = data_schema(t)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object" and schema["title"] == t.data.__name__
    assert list(schema["properties"]) == [f.encode_name for f in msgspec.structs.fields(t.data)]
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/"), ref
        _resolve(schema, ref)
    # Indentation of the docstrings msgspec copied is gone.
    assert "\n    " not in json.dumps(schema)
