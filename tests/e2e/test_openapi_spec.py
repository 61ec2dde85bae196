"""`/openapi.json` is a valid OpenAPI 3.1 document and exact where clients lean on it: every
error body is a problem, every header has a schema, every request body has an example that its
own schema accepts, every 201 says where the new resource is, and the description promises only
what exists."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def spec(stack: Any) -> dict[str, Any]:
    with httpx.Client(base_url=stack.base_url, trust_env=False, timeout=10.0) as client:
        return client.get("/openapi.json").json()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = spec["components"][kind][name]
    return node


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    errors = [f"{list(e.path)}: {e.message[:200]}" for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert not errors, "\n".join(errors[:20])
    validate(spec)  # raises on the first error, as CI tooling would


def test_every_error_body_is_a_problem(spec: dict[str, Any]) -> None:
    for path, method, op in _operations(spec):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert list(response.get("content", {})) == [PROBLEM], (method, path, status)
                assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_every_response_header_has_a_schema(spec: dict[str, Any]) -> None:
    for path, method, op in _operations(spec):
        for status, response in op["responses"].items():
            for name, header in response.get("headers", {}).items():
                assert "schema" in _resolve(spec, header), (method, path, status, name)
    assert spec["components"]["headers"]["ETag"]["schema"]["pattern"]


def test_every_request_body_has_an_example_its_schema_accepts(spec: dict[str, Any]) -> None:
    bodies = 0
    for path, method, op in _operations(spec):
        for media_type, media in op.get("requestBody", {}).get("content", {}).items():
            bodies += 1
            assert "example" in media, (method, path, media_type)
            schema = {**media["schema"], "components": spec["components"]}
            OAS31Validator(schema).validate(media["example"])
    assert bodies >= 20


def test_request_bodies_refuse_unknown_fields(spec: dict[str, Any]) -> None:
    """The server answers 422 to an unknown field, so the schemas say `additionalProperties: false`."""
    for path, method, op in _operations(spec):
        media = op.get("requestBody", {}).get("content", {}).get("application/json")
        if media is None:
            continue
        schema = _resolve(spec, media["schema"].get("oneOf", [media["schema"]])[0])
        if "properties" in schema:
            assert schema.get("additionalProperties") is False, (method, path)


def test_creates_declare_location_and_writes_their_problems(spec: dict[str, Any]) -> None:
    for path, method, op in _operations(spec):
        if "201" in op["responses"] and op["operationId"] != "createToken":  # a token has no URL
            assert "Location" in op["responses"]["201"]["headers"], (method, path)
        if path.startswith("/v1/") and method in ("post", "put", "patch", "delete"):
            codes = " ".join(r.get("description", "") for r in op["responses"].values())
            for code in ("idempotency_key_invalid", "idempotency_key_reused", "idempotency_key_in_use"):
                assert code in codes, (method, path, code)
        if any(p["name"] == "If-Match" for p in op.get("parameters", ())):
            assert {"400", "412"} <= set(op["responses"]), (method, path)
        if any(p["name"] == "If-None-Match" for p in op.get("parameters", ())):
            assert "304" in op["responses"], (method, path)
        if any(p["in"] in ("path", "query") and "maxLength" in p["schema"] for p in op.get("parameters", ())):
            assert "422" in op["responses"], (method, path)  # a parameter beyond its bound


def test_single_resource_gets_document_problems_not_litestar_bodies(spec: dict[str, Any]) -> None:
    singles = ["/v1/projects/{project_id}", "/v1/envs/{env_id}"]
    singles += ["/v1/keys/{key_id}", "/v1/webhooks/{webhook_id}"]
    for path in singles:
        responses = spec["paths"][path]["get"]["responses"]
        # Litestar's {status_code, detail, extra} was never sent; a bad If-None-Match is.
        assert responses["400"]["description"].endswith("`invalid_precondition`")
        assert "validation_failed" in responses["422"]["description"]
        assert "304" in responses


def test_the_description_promises_only_what_exists(spec: dict[str, Any]) -> None:
    routes = {f"{method.upper()} {path}" for path, method, _ in _operations(spec)}
    for mentioned in re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE) /[^`]*)`", spec["info"]["description"]):
        assert mentioned in routes, mentioned
    used = {tag for _, _, op in _operations(spec) for tag in op.get("tags", ())}
    assert {tag["name"] for tag in spec["tags"]} <= used


def test_docs_serves_the_same_document(stack: Any, spec: dict[str, Any]) -> None:
    with httpx.Client(base_url=stack.base_url, trust_env=False, timeout=10.0) as client:
        assert client.get("/docs/openapi.json").json() == spec


def test_response_schemas_require_what_the_server_always_sends(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert {"object", "deleted", "build"} <= set(schemas["Project"]["required"])
    assert {"object", "secrets", "version", "allowed_ips", "revoked"} <= set(schemas["KeyView"]["required"])
    assert "error" in schemas["ProjectEnvelope"]["required"]
    # What msgspec leaves out stays optional: `omit_defaults` structs, and request defaults.
    assert "errors" not in schemas["Problem"].get("required", [])
    assert "key_id" not in schemas["Actor"].get("required", [])
    assert schemas["ProjectCreate"]["required"] == ["name"]


def test_feeds_document_their_page_and_their_stream(spec: dict[str, Any]) -> None:
    for path, envelope, item in [
        ("/v1/events", "EventListEnvelope", "Event"),
        ("/v1/deployments/{deployment_id}/logs", "LogListEnvelope", "LogLine"),
    ]:
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/event-stream"}
        page = _resolve(spec, content["application/json"]["schema"])
        assert page is spec["components"]["schemas"][envelope]
        assert page["properties"]["data"]["items"]["$ref"].rsplit("/", 1)[1].startswith(item)
    log_line = spec["components"]["schemas"]["LogLine"]
    assert log_line["required"] == ["seq", "ts", "stream", "text"]
    ready = spec["paths"]["/readyz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ready != {}


def test_request_schemas_state_the_servers_rules(spec: dict[str, Any]) -> None:
    schemas = {**spec["components"]["schemas"]}

    def valid(name: str, body: Any) -> bool:
        return OAS31Validator(
            {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        ).is_valid(body)

    project = "prj_" + "a" * 26
    assert valid("DeploymentCreate", {"project": project, "ref": "main"})
    assert not valid("DeploymentCreate", {"project": project, "ref": "main", "sha": "abcdef1"})
    assert not valid("DeploymentCreate", {"project": "web"})
    assert valid("VarsPost", {"key": "A", "value": "1"}) and valid(
        "VarsPost", {"vars": [{"key": "A", "value": "1"}]}
    )
    assert not valid("VarsPost", {"key": "A", "value": "1", "vars": [{"key": "B", "value": "2"}]})
    assert not valid("VarsPost", {"key": "A"})
    assert valid("RedeliverBody", {"since": "2026-04-28T00:00:00Z"})
    assert not valid("RedeliverBody", {}) and not valid(
        "RedeliverBody", {"event_id": "evt_" + "a" * 26, "since": "2026-04-28T00:00:00Z"}
    )
    assert not valid("RedeliverBody", {"until": "2026-12-31T23:59:60Z"})  # a leap second: msgspec refuses it
    hook = {"url": "https://hooks.example.com/x", "events": ["deployment.succeeded"]}
    assert valid("WebhookCreate", hook) and valid("WebhookCreate", {**hook, "events": ["*"]})
    assert not valid("WebhookCreate", {**hook, "events": ["deployment.exploded"]})
    assert not valid("WebhookCreate", {**hook, "url": "ftp://hooks.example.com/x"})
    assert valid(
        "KeyCreate", {"name": "k", "scopes": ["read"], "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]}
    )
    assert not valid("KeyCreate", {"name": "k", "scopes": ["read"], "allowed_ips": ["203.0.113.0/33"]})
    assert not valid("KeyCreate", {"name": "k", "scopes": ["read"], "environments": [""]})
    assert valid("MetricsQueryBody", {"metric": "m", "range": "30d"})
    assert not valid("MetricsQueryBody", {"metric": "m", "range": "31d"})
    assert "\\s" not in json.dumps(schemas)


def test_metrics_parameters_have_their_grammar(spec: dict[str, Any]) -> None:
    parameters = {p["name"]: p["schema"] for p in spec["paths"]["/v1/metrics/requests"]["get"]["parameters"]}
    assert re.match(parameters["range"]["pattern"], "24h") and not re.match(
        parameters["range"]["pattern"], "0m"
    )
    group_by = parameters["group_by"]["oneOf"][0]["pattern"]
    assert re.match(group_by, "env,route") and not re.match(group_by, "envroute")
