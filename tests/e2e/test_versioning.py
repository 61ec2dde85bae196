"""API versions and deprecation: an unknown version prefix is `unsupported_version`, and a stack
configured with `STRATUS_DEPRECATIONS` answers deprecated routes with `Deprecation` (RFC 9745),
`Sunset` (RFC 8594) and `Link` headers, and marks them deprecated in its OpenAPI document."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from stratus_testing import Stack

from .conftest import problem

TEAM_DOCS = "https://docs.example.com/migrate/team-access"
ME_DOCS = "https://docs.example.com/migrate/me"
DEPRECATIONS = [
    {
        "path": "/v1/projects/{project_id}/members",
        "deprecated": "2026-01-01T00:00:00Z",
        "sunset": "2027-01-01T00:00:00Z",
        "link": TEAM_DOCS,
    },
    {"path": "/v1/me", "method": "GET", "deprecated": "2026-03-01", "link": ME_DOCS},
]


def _epoch(*date: int) -> str:
    return f"@{int(datetime(*date, tzinfo=UTC).timestamp())}"


@pytest.mark.parametrize("path", ["/v2/projects", "/v0/projects", "/v1beta/projects", "/v2", "/v12/me"])
def test_unknown_version_prefix_is_unsupported_version(
    anon: httpx.Client, live: httpx.Client, path: str
) -> None:
    body = problem(anon.get(path), 404, "unsupported_version")
    assert "/v1" in body["detail"]
    problem(live.post(path, json={"name": "x"}), 404, "unsupported_version")


def test_other_unknown_paths_stay_route_not_found(anon: httpx.Client, live: httpx.Client) -> None:
    problem(live.get("/v1/nothing-here"), 404, "route_not_found")
    problem(anon.get("/video/v2"), 404, "route_not_found")
    problem(anon.get("/nowhere"), 404, "route_not_found")


def test_nothing_is_deprecated_without_configuration(live: httpx.Client) -> None:
    response = live.get("/v1/me")
    assert response.status_code == 200
    assert not {"deprecation", "sunset", "link"} & set(response.headers)


@pytest.fixture(scope="module")
def deprecating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"STRATUS_DEPRECATIONS": json.dumps(DEPRECATIONS)}
    with Stack(tmp_path_factory.mktemp("deprecating"), env=env) as running:
        yield running


def test_a_deprecated_route_says_so_with_sunset_and_link(deprecating: Stack) -> None:
    with deprecating.client(deprecating.live_key) as client:
        project = client.post("/v1/projects", json={"name": f"dep-{uuid.uuid4().hex[:8]}"}).json()["data"]
        team = client.get(f"/v1/projects/{project['id']}/members")
        assert team.status_code == 200
        assert team.headers["deprecation"] == _epoch(2026, 1, 1)
        assert team.headers["sunset"] == "Fri, 01 Jan 2027 00:00:00 GMT"
        assert f'<{TEAM_DOCS}>; rel="deprecation"' in team.headers["link"]
        assert f'<{TEAM_DOCS}>; rel="sunset"' in team.headers["link"]
        # Errors on a deprecated route carry the headers too.
        missing = client.get(f"/v1/projects/prj_{'z' * 26}/members")
        problem(missing, 404, "project_not_found")
        assert missing.headers["deprecation"] == _epoch(2026, 1, 1)
        # The project itself is not deprecated.
        got = client.get(f"/v1/projects/{project['id']}")
        assert got.status_code == 200 and "deprecation" not in got.headers and "sunset" not in got.headers


def test_a_rule_can_name_one_method_and_leave_out_the_sunset(deprecating: Stack) -> None:
    with deprecating.client(deprecating.live_key) as client:
        me = client.get("/v1/me")
        assert me.status_code == 200
        assert me.headers["deprecation"] == _epoch(2026, 3, 1)
        assert "sunset" not in me.headers
        assert me.headers["link"] == f'<{ME_DOCS}>; rel="deprecation"; type="text/html"'
        # Another method on the same path is not covered by the rule (and is a 405 anyway).
        assert "deprecation" not in client.post("/v1/me", json={}).headers


def test_openapi_marks_deprecated_operations(deprecating: Stack) -> None:
    spec = httpx.get(f"{deprecating.base_url}/openapi.json", trust_env=False).json()
    members = spec["paths"]["/v1/projects/{project_id}/members/{member_id}"]
    assert members["put"]["deprecated"] is True and TEAM_DOCS in members["put"]["description"]
    assert spec["paths"]["/v1/me"]["get"]["deprecated"] is True
    assert not spec["paths"]["/v1/projects/{project_id}"]["get"].get("deprecated")
