"""Conventions every route shares: errors as problems, request ids, health, OpenAPI."""

from __future__ import annotations

import os
import signal

import httpx

from stratus_contracts.errors import CATALOGUE
from stratus_testing import Stack

from .conftest import problem


def test_unknown_route_and_method(live: httpx.Client, anon: httpx.Client) -> None:
    problem(live.get("/v1/nothing-here"), 404, "route_not_found")
    problem(anon.get("/nowhere"), 404, "route_not_found")
    response = live.put("/v1/projects", json={})
    problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"] and "POST" in response.headers["allow"]


def test_body_problems(live: httpx.Client) -> None:
    problem(
        live.post("/v1/projects", content=b'{"name": ', headers={"content-type": "application/json"}),
        400,
        "malformed_json",
    )
    problem(
        live.post(
            "/v1/projects", content=b"name=web", headers={"content-type": "application/x-www-form-urlencoded"}
        ),
        415,
        "unsupported_media_type",
    )
    problem(
        live.post("/v1/projects", content=b'{"name":"web"}', headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    big = b'{"name": "big", "description": "' + b"x" * (1024 * 1024) + b'"}'
    problem(
        live.post("/v1/projects", content=big, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )


def test_request_ids(live: httpx.Client) -> None:
    echoed = live.get("/v1/me", headers={"X-Request-Id": "client-abc.123"})
    assert echoed.headers["x-request-id"] == "client-abc.123"
    assert echoed.json()["meta"]["request_id"] == "client-abc.123"
    replaced = live.get("/v1/me", headers={"X-Request-Id": "bad id\twith junk" * 20})
    assert replaced.headers["x-request-id"].startswith("req_")
    assert live.get("/v1/nope").headers["x-request-id"].startswith("req_")


def test_health_and_readiness_need_no_key(anon: httpx.Client) -> None:
    assert anon.get("/healthz").status_code == 200
    ready = anon.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["data"]["checks"] == {
        "nats": True,
        "identity": True,
        "projects": True,
        "deployments": True,
        "webhooks": True,
        "audit": True,
        "metrics": True,
    }


def test_openapi_covers_routes_errors_and_bearer(anon: httpx.Client) -> None:
    spec = anon.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    ops = {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}
    for path, method in [
        ("/v1/projects", "get"),
        ("/v1/projects", "post"),
        ("/v1/projects/{project_id}", "get"),
        ("/v1/projects/{project_id}", "patch"),
        ("/v1/projects/{project_id}", "delete"),
        ("/v1/me", "get"),
    ]:
        op = ops[(path, method)]
        assert op["operationId"]
        assert {"401", "503", "504"} <= set(op["responses"]), (path, method)
        assert "application/problem+json" in op["responses"]["401"]["content"]
        assert op.get("security", spec.get("security")) == [{"bearer": []}]
    assert "requestBody" in ops[("/v1/projects", "post")]
    assert "409" in ops[("/v1/projects", "post")]["responses"]
    assert "422" in ops[("/v1/projects", "post")]["responses"]
    problem_schema = spec["components"]["schemas"]["Problem"]
    assert problem_schema["properties"]["code"]["enum"] == list(CATALOGUE)
    assert ops[("/healthz", "get")]["security"] == [{}]


def test_openapi_declares_the_response_headers(anon: httpx.Client, live: httpx.Client) -> None:
    spec = anon.get("/openapi.json").json()
    declared = spec["components"]["headers"]
    rate = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
    assert {"X-Request-Id", *rate} <= set(declared)
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                headers = response.get("headers", {})
                assert "X-Request-Id" in headers, (path, method, status)
                if path.startswith("/v1/"):
                    assert "X-RateLimit-Remaining" in headers, (path, method, status)
                if status == "429":
                    assert "Retry-After" in headers, (path, method, status)
    refs = [
        header["$ref"]
        for item in spec["paths"].values()
        for op in item.values()
        for response in op["responses"].values()
        for header in response["headers"].values()
        if "$ref" in header
    ]
    assert refs and all(ref.removeprefix("#/components/headers/") in declared for ref in refs)
    # What is declared is what is sent.
    assert live.get("/v1/me").headers["x-request-id"].startswith("req_")


def test_error_pages_explain_codes(anon: httpx.Client) -> None:
    for code, spec in CATALOGUE.items():
        page = anon.get(f"/errors/{code}")
        assert page.status_code == 200 and spec.title in page.text
    problem(anon.get("/errors/no_such_code"), 404, "route_not_found")


def test_a_service_that_does_not_answer_is_504(stack: Stack, live: httpx.Client) -> None:
    pids = stack.service_pids("projects")  # every replica: none may answer
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        response = live.get("/v1/projects")
        body = problem(response, 504, "service_timeout")
        assert "Retry-After" in response.headers and body["detail"]
        # Other services still answer.
        assert live.get("/v1/me").status_code == 200
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    stack.wait_ready()
    assert live.get("/v1/projects").status_code == 200
