"""Input limits: every one answers with a problem naming what was too big and the limit, never a
500 — body fields (string lengths, list sizes), JSON nesting, `limit`, URL and header sizes.
One test reads every route's body type and fails on a string or list without a maximum."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import msgspec
import pytest

from stratus_gateway.app import create_app
from stratus_gateway.limits import MAX_HEADER, MAX_HEADERS, MAX_JSON_DEPTH, MAX_URL

from .conftest import problem

PRJ = "prj_" + "a" * 26
KEY = {"name": "k", "scopes": ["read"]}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# (method, path, body, field, limit): each body breaks exactly one limit.
FIELD_LIMITS = [
    ("POST", "/v1/projects", {"name": "a" * 64}, "name", 63),
    ("POST", "/v1/projects", {"name": "ok", "description": "d" * 1001}, "description", 1000),
    ("PATCH", "/v1/projects/{project}", {"description": "d" * 1001}, "description", 1000),
    ("PATCH", "/v1/projects/{project}", {"name": "a" * 64}, "name", 63),
    ("POST", "/v1/keys", {**KEY, "name": "n" * 101}, "name", 100),
    ("POST", "/v1/keys", {**KEY, "scopes": ["read", "write", "admin", "read"]}, "scopes", 3),
    ("POST", "/v1/keys", {**KEY, "project_ids": [PRJ] * 101}, "project_ids", 100),
    ("POST", "/v1/keys", {**KEY, "project_ids": ["p" * 65]}, "project_ids[0]", 64),
    ("POST", "/v1/keys", {**KEY, "environments": ["e"] * 101}, "environments", 100),
    ("POST", "/v1/keys", {**KEY, "environments": ["e" * 64]}, "environments[0]", 63),
    ("POST", "/v1/keys", {**KEY, "allowed_ips": ["10.0.0.0/8"] * 101}, "allowed_ips", 100),
    ("POST", "/v1/keys", {**KEY, "allowed_ips": ["1" * 65]}, "allowed_ips[0]", 64),
    ("POST", "/v1/keys", {**KEY, "member_id": "m" * 65}, "member_id", 64),
    ("PATCH", "/v1/keys/{key}", {"environments": ["e"] * 101}, "environments", 100),
    ("PATCH", "/v1/keys/{key}", {"allowed_ips": ["1" * 65]}, "allowed_ips[0]", 64),
    ("POST", "/v1/keys/{key}/rotate", {"overlap_seconds": 2_592_001}, "overlap_seconds", 2_592_000),
    ("POST", "/v1/members", {"email": "a@" + "b" * 250 + ".io"}, "email", 254),
    ("POST", "/v1/members", {"email": "a@b.io", "name": "n" * 101}, "name", 100),
    ("POST", "/v1/tokens", {"subject": "s" * 201}, "subject", 200),
    ("POST", "/v1/tokens", {"ttl_seconds": 86_401}, "ttl_seconds", 86_400),
    ("POST", "/v1/tokens", {"project_ids": [PRJ] * 101}, "project_ids", 100),
    ("POST", "/v1/tokens", {"environments": ["e" * 64]}, "environments[0]", 63),
]


@pytest.fixture(scope="module")
def ids(stack: Any) -> dict[str, str]:
    with stack.client(stack.live_key) as client:
        project = client.post("/v1/projects", json={"name": _unique("limits")}).json()["data"]["id"]
        key = client.post("/v1/keys", json={**KEY, "name": _unique("limits")}).json()["data"]["id"]
    return {"project": project, "key": key}


@pytest.mark.parametrize(("method", "path", "body", "field", "limit"), FIELD_LIMITS)
def test_a_field_beyond_its_limit_is_named_with_the_limit(
    live: httpx.Client, ids: dict[str, str], method: str, path: str, body: dict, field: str, limit: int
) -> None:
    response = live.request(method, path.format(**ids), json=body)
    errors = problem(response, 422, "validation_failed")["errors"]
    assert [e["field"] for e in errors] == [field]
    assert str(limit) in errors[0]["message"], errors


def _unbounded(tp: Any, where: str) -> list[str]:
    """Strings, lists and dicts in a body type without a maximum size, and integers without a
    bound (recursively)."""
    info = msgspec.inspect.type_info(tp)
    found: list[str] = []

    def walk(t: msgspec.inspect.Type, path: str) -> None:
        match t:
            case msgspec.inspect.StrType(max_length=None):
                found.append(path)
            case msgspec.inspect.ListType() | msgspec.inspect.TupleType() | msgspec.inspect.VarTupleType():
                if getattr(t, "max_length", None) is None and not isinstance(t, msgspec.inspect.TupleType):
                    found.append(path)
                for item in getattr(t, "item_types", ()) or (t.item_type,):
                    walk(item, f"{path}[]")
            case msgspec.inspect.DictType():
                if t.max_length is None:
                    found.append(path)
                walk(t.key_type, f"{path}{{key}}")
                walk(t.value_type, f"{path}{{}}")
            case msgspec.inspect.IntType(ge=None, le=None, gt=None, lt=None):
                found.append(path)
            case msgspec.inspect.UnionType():
                for member in t.types:
                    walk(member, path)
            case msgspec.inspect.StructType():
                for f in t.fields:
                    walk(f.type, f"{path}.{f.name}")

    walk(info, where)
    return found


def test_no_body_field_is_unbounded() -> None:
    app = create_app(bus=None)
    bodies = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None:
                bodies[handler.operation_id] = data.annotation
    assert len(bodies) >= 8
    unbounded = [field for op, tp in bodies.items() for field in _unbounded(tp, op)]
    # Litestar drops an `Annotated[..., msgspec.Meta(...)]` wrapped around a whole body type (it
    # decodes with the bare type), so a top-level limit must live on a Struct field instead.
    assert unbounded == [], "unbounded body fields (what Litestar actually decodes with)"


def test_json_nested_too_deep_is_400_not_500(live: httpx.Client) -> None:
    deep = b'{"name": "x", "description": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}"
    headers = {"content-type": "application/json"}
    body = problem(live.post("/v1/projects", content=deep, headers=headers), 400, "json_too_deep")
    assert str(MAX_JSON_DEPTH) in body["detail"]
    abyss = b"[" * 200_000 + b"]" * 200_000
    problem(live.post("/v1/projects", content=abyss, headers=headers), 400, "json_too_deep")
    # At the limit the body decodes, and the field's type is what is wrong.
    within = (
        b'{"name": "x", "description": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    )
    problem(live.post("/v1/projects", content=within, headers=headers), 422, "validation_failed")


@pytest.mark.parametrize(
    "path", ["/v1/projects", "/v1/keys", "/v1/members", "/v1/audit-events", f"/v1/projects/{PRJ}/members"]
)
def test_page_size_is_1_to_100(live: httpx.Client, path: str) -> None:
    for limit in (101, 0):
        errors = problem(live.get(path, params={"limit": limit}), 422, "validation_failed")["errors"]
        assert errors[0]["field"] == "limit"
    assert (
        "100"
        in problem(live.get(path, params={"limit": 101}), 422, "validation_failed")["errors"][0]["message"]
    )


def test_overlong_query_values_are_named(live: httpx.Client) -> None:
    errors = problem(live.get("/v1/projects", params={"cursor": "c" * 513}), 422, "validation_failed")[
        "errors"
    ]
    assert errors[0]["field"] == "cursor" and "512" in errors[0]["message"]
    errors = problem(live.get("/v1/projects", params={"name": "n" * 64}), 422, "validation_failed")["errors"]
    assert errors[0]["field"] == "name" and "63" in errors[0]["message"]


def test_overlong_urls_are_414(live: httpx.Client, anon: httpx.Client) -> None:
    body = problem(live.get("/v1/projects", params={"name": "n" * MAX_URL}), 414, "uri_too_long")
    assert str(MAX_URL) in body["detail"]
    problem(anon.get("/" + "p" * MAX_URL), 414, "uri_too_long")


def test_oversized_headers_are_431(live: httpx.Client, anon: httpx.Client) -> None:
    one = problem(live.get("/v1/me", headers={"X-Padding": "x" * MAX_HEADER}), 431, "headers_too_large")
    assert "x-padding" in one["detail"] and str(MAX_HEADER) in one["detail"]
    many = {f"X-Padding-{i}": "x" * (MAX_HEADER // 2) for i in range(MAX_HEADERS // (MAX_HEADER // 2) + 1)}
    total = problem(anon.get("/healthz", headers=many), 431, "headers_too_large")
    assert str(MAX_HEADERS) in total["detail"]
    # Below the limits nothing changes.
    assert live.get("/v1/me", headers={"X-Padding": "x" * 1000}).status_code == 200


def test_body_size_is_413(live: httpx.Client) -> None:
    big = b'{"name": "k", "scopes": ["read"], "allowed_ips": ["' + b"1" * (1024 * 1024) + b'"]}'
    problem(
        live.post("/v1/keys", content=big, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )


def test_query_times_are_rfc_3339_and_parameters_come_once(live: httpx.Client) -> None:
    """Litestar reads `created[lt]=0.5` as an epoch and `limit=1&limit=2` as a list: both are 422."""
    for value in ("0.5", "1714298062", "2026-04-28"):
        errors = problem(live.get("/v1/events", params={"created[lt]": value}), 422, "validation_failed")[
            "errors"
        ]
        assert errors[0]["field"] == "created[lt]" and "RFC 3339" in errors[0]["message"]
    errors = problem(
        live.get("/v1/projects", params=[("limit", "1"), ("limit", "2")]), 422, "validation_failed"
    )["errors"]
    assert errors[0]["field"] == "limit"
    assert live.get("/v1/events", params={"created[lt]": "2026-04-28T10:14:22Z"}).status_code == 200
