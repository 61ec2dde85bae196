"""OpenAPI response declarations: the problems each route can answer with, and the response
headers the API's conventions put on them (API.md)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from litestar.openapi.datastructures import ResponseSpec

from stratus_contracts.errors import spec
from stratus_gateway.problems import PROBLEM_JSON, Problem

AUTH_CODES = ("missing_api_key", "malformed_api_key", "invalid_api_key", "api_key_revoked")
COMMON_CODES = ("service_unavailable", "service_timeout", "internal_error")
BODY_CODES = (
    "malformed_json",
    "json_too_deep",
    "unsupported_media_type",
    "payload_too_large",
    "validation_failed",
)


def problems(*codes: str, auth: bool = True, body: bool = False) -> dict[int, ResponseSpec]:
    """ResponseSpecs for the given codes (plus auth/body/availability ones), grouped by status."""
    all_codes = list(codes) + list(COMMON_CODES)
    if auth:
        all_codes += (*AUTH_CODES, "rate_limited")
    if body:
        all_codes += BODY_CODES
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in dict.fromkeys(all_codes):
        by_status[spec(code).status].append(code)
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description="Problem details; `code` is one of: " + ", ".join(f"`{c}`" for c in group),
            generate_examples=False,
        )
        for status, group in sorted(by_status.items())
    }


_INT = {"type": "integer", "minimum": 0}
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "This request's id (an incoming sane `X-Request-Id` is echoed); quote it when "
        "reporting a problem. Also `meta.request_id` / `request_id` in the body.",
        "schema": {"type": "string"},
    },
    "X-RateLimit-Limit": {
        "description": "The paying bucket's capacity (the API key's plan, or the client address for "
        "requests without a valid key). Absent for keys on a plan without a limit.",
        "schema": _INT,
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the bucket. Absent for keys on a plan without a limit.",
        "schema": _INT,
    },
    "X-RateLimit-Reset": {
        "description": "Seconds until the bucket is full again (not an epoch). Absent for keys on a "
        "plan without a limit.",
        "schema": _INT,
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": _INT},
    "Warning": {
        "description": '`299 stratus "…"` when the API key is older than the age warning (90 days '
        "by default): rotate it.",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored first answer to an earlier request with the "
        "same `Idempotency-Key`.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
_WRITES = frozenset({"post", "put", "patch", "delete"})


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def document_headers(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare the response headers every operation's responses carry: `X-Request-Id` on all;
    on `/v1` also the `X-RateLimit-*` headers and `Warning`; `Idempotent-Replayed` on `/v1`
    writes; `Retry-After` on 429 and 503."""
    spec.setdefault("components", {}).setdefault("headers", {}).update(HEADERS)
    for path, item in spec.get("paths", {}).items():
        v1 = path.startswith("/v1/")
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, response in operation["responses"].items():
                names = ["X-Request-Id"]
                if v1:
                    names += ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Warning"]
                    if method in _WRITES and str(status).startswith("2"):
                        names.append("Idempotent-Replayed")
                if str(status) in ("429", "503"):
                    names.append("Retry-After")
                headers = response.setdefault("headers", {})
                for name in names:
                    headers.setdefault(name, _ref(name))
    return spec
