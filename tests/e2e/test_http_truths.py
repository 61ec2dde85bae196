"""Small HTTP truths a client relies on: `OPTIONS` and a 405 agree on `Allow`, every
authenticated response carries `X-RateLimit-*` (404 and 405 included), `If-None-Match` answers
304 on single resources, one name for the account field, and `/docs` works with no network."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from stratus_testing import Stack

from .conftest import problem

RATE = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.fixture(scope="module")
def free(stack: Stack) -> Iterator[httpx.Client]:
    """A key on the `free` plan (the session's keys are on `internal`, which has no limit and so
    no rate-limit headers)."""
    made = json.loads(
        stack.cli("accounts", "create", f"free-{uuid.uuid4().hex[:8]}", "--json", "--plan", "free").stdout
    )
    with stack.client(made["keys"]["live"]) as client:
        yield client


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_options_answers_the_allow_of_a_405(live: httpx.Client) -> None:
    spec = live.get("/openapi.json").json()
    for path, item in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        documented = {method.upper() for method in item} | {"OPTIONS"}
        options = live.options(_concrete(path))
        assert options.status_code == 204, (path, options.text)
        allowed = options.headers["allow"]
        assert {m.strip() for m in allowed.split(",")} == documented, path
        unused = next(m for m in ("PUT", "PATCH", "DELETE", "POST", "GET") if m not in documented)
        refused = live.request(unused, _concrete(path), json={})
        problem(refused, 405, "method_not_allowed")
        assert refused.headers["allow"] == allowed, path


def test_rate_limit_headers_on_every_authenticated_response(free: httpx.Client) -> None:
    created = free.post("/v1/projects", json={"name": f"rl-{uuid.uuid4().hex[:8]}"})
    project = created.json()["data"]
    answers = {
        "201": created,
        "200": free.get(f"/v1/projects/{project['id']}"),
        "304": free.get(f"/v1/projects/{project['id']}", headers={"If-None-Match": created.headers["etag"]}),
        "404 route": free.get("/v1/no-such-route"),
        "404 resource": free.get("/v1/projects/prj_" + "z" * 26),
        "405": free.put("/v1/projects", json={}),
        "204 OPTIONS": free.options("/v1/projects"),
        "412": free.patch(f"/v1/projects/{project['id']}", json={}, headers={"If-Match": 'W/"1"'}),
    }
    for what, response in answers.items():
        assert response.status_code == int(what.split()[0]), (what, response.text)
        for name in RATE:
            assert name in response.headers, (what, name, dict(response.headers))
    assert int(answers["405"].headers["x-ratelimit-limit"]) == 1000  # the free plan's bucket
    # A request without credentials to an unknown route pays from its address as before: no key.
    with httpx.Client(base_url=str(free.base_url), trust_env=False) as anon:
        assert anon.get("/v1/no-such-route").status_code == 404


def test_if_none_match_is_304_on_single_resources(live: httpx.Client) -> None:
    project = live.post("/v1/projects", json={"name": f"inm-{uuid.uuid4().hex[:8]}"}).json()["data"]
    path = f"/v1/projects/{project['id']}"
    current = live.get(path)
    etag = current.headers["etag"]
    for value in (etag, f"W/{etag}", f'"999", {etag}', "*"):
        unchanged = live.get(path, headers={"If-None-Match": value})
        assert unchanged.status_code == 304, value
        assert unchanged.headers["etag"] == etag and unchanged.content == b""
    assert live.get(path, headers={"If-None-Match": '"999"'}).status_code == 200
    problem(live.get(path, headers={"If-None-Match": "1"}), 400, "invalid_precondition")
    # Changed: the old tag no longer matches.
    live.patch(path, json={"description": "changed"})
    assert live.get(path, headers={"If-None-Match": etag}).status_code == 200
    # The other single resources with an ETag.
    env = live.get(f"{path}/envs").json()["data"][0]
    for single in (f"/v1/envs/{env['id']}", f"/v1/keys/{live.get('/v1/me').json()['data']['key_id']}"):
        tag = live.get(single).headers["etag"]
        assert live.get(single, headers={"If-None-Match": tag}).status_code == 304, single


def test_one_name_for_the_account(stack: Stack, live: httpx.Client) -> None:
    me = live.get("/v1/me").json()["data"]
    assert me["account"] == stack.account_id and "account_id" not in me
    key = live.get(f"/v1/keys/{me['key_id']}").json()["data"]
    assert key["account"] == me["account"]


def test_docs_render_from_local_assets(anon: httpx.Client) -> None:
    page = anon.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/assets/") or s.startswith("data:") for s in sources), sources
    assert not re.search(r"https?://", page.text)
    for source in sources:
        if source.startswith("/"):
            asset = anon.get(source)
            assert asset.status_code == 200 and len(asset.content) > 100, source
    bundle = anon.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content
    init = anon.get("/docs/assets/init.js").text
    assert '"/openapi.json"' in init and "validatorUrl: null" in init  # no call to an online validator
    problem(anon.get("/docs/assets/nothing.js"), 404, "route_not_found")
    problem(anon.get("/docs/nothing"), 404, "route_not_found")
