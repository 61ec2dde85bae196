"""The gateway's edge rules without a stack: version prefixes, deprecation rules and their
headers, If-Match parsing and the JSON depth check."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stratus_gateway.limits import MAX_JSON_DEPTH, json_depth_exceeds
from stratus_gateway.preconditions import Precondition, not_modified, parse_if_match
from stratus_gateway.problems import ApiError
from stratus_gateway.versioning import deprecation_headers, document, parse_deprecations, unsupported_version


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/v2/projects", "v2"),
        ("/v0/projects", "v0"),
        ("/v1beta/projects", "v1beta"),
        ("/v10", "v10"),
        ("/v01/me", "v01"),
        ("/v1/projects", None),
        ("/v1", None),
        ("/video/x", None),
        ("/nowhere", None),
        ("/errors/v2", None),
    ],
)
def test_unsupported_version_prefixes(path: str, version: str | None) -> None:
    assert unsupported_version(path) == version


def _rules(*rules: dict) -> list:
    return parse_deprecations(json.dumps(list(rules)))


def test_rules_match_at_segment_boundaries_with_placeholders() -> None:
    base = {"deprecated": "2026-01-01T00:00:00Z", "link": "https://docs.example.com/m"}
    [version] = _rules({"path": "/v1", **base})
    assert version.matches("GET", "/v1/projects") and version.matches("POST", "/v1")
    assert not version.matches("GET", "/v1beta/projects")
    [route] = _rules({"path": "/v1/projects/{project_id}/members", "method": "put", **base})
    assert route.matches("PUT", "/v1/projects/prj_1/members/mem_2")
    assert route.matches("PUT", "/v1/projects/{project_id}/members/{member_id}")  # spec templates
    assert not route.matches("GET", "/v1/projects/prj_1/members")
    assert not route.matches("PUT", "/v1/projects/prj_1")
    [exact] = _rules({"path": "/v1/projects/{project_id}", "exact": True, **base})
    assert exact.matches("GET", "/v1/projects/prj_1")
    assert not exact.matches("GET", "/v1/projects/prj_1/members")


def test_headers_follow_rfc_9745_and_8594() -> None:
    [rule] = _rules(
        {
            "path": "/v1/me",
            "deprecated": "2026-01-01",  # a bare date is midnight UTC
            "sunset": "2027-01-01T00:00:00+01:00",
            "link": "https://docs.example.com/me",
        }
    )
    hook = deprecation_headers([rule])
    message = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]}
    hook(message, {"method": "GET", "path": "/v1/me"})  # type: ignore[arg-type]
    headers = dict(message["headers"])
    assert headers[b"deprecation"] == f"@{int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())}".encode()
    assert headers[b"sunset"] == b"Thu, 31 Dec 2026 23:00:00 GMT"
    assert headers[b"link"] == (
        b'<https://docs.example.com/me>; rel="deprecation"; type="text/html", '
        b'<https://docs.example.com/me>; rel="sunset"; type="text/html"'
    )
    untouched = {"type": "http.response.start", "status": 200, "headers": []}
    hook(untouched, {"method": "GET", "path": "/v1/projects"})  # type: ignore[arg-type]
    assert untouched["headers"] == []


def test_openapi_marks_covered_operations_deprecated() -> None:
    rules = _rules({"path": "/v1/me", "deprecated": "2026-01-01", "link": "https://d.example.com"})
    spec = {"paths": {"/v1/me": {"get": {"description": "Me."}}, "/v1/projects": {"get": {}}}}
    document(spec, rules)
    assert spec["paths"]["/v1/me"]["get"]["deprecated"] is True
    assert "https://d.example.com" in spec["paths"]["/v1/me"]["get"]["description"]
    assert "deprecated" not in spec["paths"]["/v1/projects"]["get"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ('{"path": "/v1"}', "STRATUS_DEPRECATIONS"),
        ('[{"path": "/v1", "deprecated": true, "link": "https://x"}]', "RFC 9745"),
        ('[{"path": "v1", "deprecated": "2026-01-01", "link": "https://x"}]', "must start with"),
        ('[{"path": "/v1", "deprecated": "soon", "link": "https://x"}]', "RFC 3339"),
        ('[{"path": "/v1", "deprecated": "2026-01-01", "link": "x"}]', "link"),
        ('[{"path": "/v1", "deprecated": "2026-01-01", "link": "https://x", "method": "FETCH"}]', "method"),
        (
            '[{"path": "/v1", "deprecated": "2026-01-01", "sunset": "2025-01-01", "link": "https://x"}]',
            "before",
        ),
        ('[{"path": "/v1", "deprecated": "2026-01-01", "link": "https://x", "when": 1}]', "when"),
    ],
)
def test_bad_configuration_is_refused_with_a_reason(rules: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_deprecations(rules)


def test_no_configuration_no_rules() -> None:
    assert parse_deprecations(None) == [] and parse_deprecations("  ") == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Precondition()),
        ("*", Precondition(exists=True)),
        ('"3"', Precondition(version=3)),
        (' "12" ', Precondition(version=12)),
        ('"3", W/"4", "x"', Precondition(version=3)),
        ('"3","3"', Precondition(version=3)),
        # Well-formed tags that can never match (weak, opaque, beyond any version): version 0,
        # which no resource has, so the service answers 412 (after its 404 and 403).
        ('W/"3"', Precondition(version=0)),
        ('"a"', Precondition(version=0)),
        ('""', Precondition(version=0)),
        ('"' + "9" * 19 + '"', Precondition(version=0)),
    ],
)
def test_if_match_values(header: str | None, expected: Precondition) -> None:
    assert parse_if_match(header) == expected


@pytest.mark.parametrize("header", ["3", "", "W/3", '"1", "2"', '"3" "4"', '"3",', '*, "3"', '"a'])
def test_malformed_if_match_is_refused(header: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_if_match(header)
    assert info.value.code == "invalid_precondition"


@pytest.mark.parametrize(
    ("header", "version", "expected"),
    [
        (None, 3, False),
        ("*", 3, True),
        ('"3"', 3, True),
        ('W/"3"', 3, True),  # If-None-Match compares weakly
        ('"2", "3"', 3, True),
        ('"2"', 3, False),
        ('"abc"', 3, False),
    ],
)
def test_if_none_match(header: str | None, version: int, expected: bool) -> None:
    assert not_modified(header, version) is expected


def _nested(depth: int) -> bytes:
    return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_json_depth() -> None:
    assert not json_depth_exceeds(_nested(MAX_JSON_DEPTH))
    assert json_depth_exceeds(_nested(MAX_JSON_DEPTH + 1))
    assert json_depth_exceeds(b"[" * 100_000 + b"]" * 100_000)
    # Brackets inside strings do not count, escaped quotes included.
    text = json.dumps({"a": "[" * 100 + '\\"' + "{" * 100}).encode()
    assert not json_depth_exceeds(text)
    # Many brackets side by side are wide, not deep.
    assert not json_depth_exceeds(json.dumps({"ids": [[1]] * 1000}).encode())
    # Malformed input is left to the decoder to report.
    assert not json_depth_exceeds(b"[" * 40 + b"}" * 40)
