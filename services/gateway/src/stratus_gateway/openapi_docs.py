"""OpenAPI response declarations for the problems each route can answer with."""

from __future__ import annotations

from collections import defaultdict

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
