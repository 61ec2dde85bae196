"""The SDK's pure parts, without a stack: how arguments become a request, the retry policy, the
SSE parser, and errors from answers that are not problems."""

from __future__ import annotations

import email.utils
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from msgspec import UNSET

import stratus
from stratus._common import SSEDecoder, prepare, retryable
from stratus.errors import error_from_response


def test_arguments_go_where_the_operation_table_says() -> None:
    made = prepare(
        "updateProject",
        {"self": object(), "project_id": "prj_a/b", "name": "web", "description": UNSET, "build": None,
         "if_match": 3, "idempotency_key": None},
    )  # fmt: skip
    assert (made.method, made.path) == ("PATCH", "/v1/projects/prj_a%2Fb")
    assert json.loads(made.content or b"") == {"name": "web", "build": None}  # UNSET left out, None is null
    assert made.headers["If-Match"] == '"3"' and made.headers["Content-Type"] == "application/json"
    again = prepare("updateProject", {"project_id": "p", "idempotency_key": None})
    assert again.headers["Idempotency-Key"] != made.headers["Idempotency-Key"]  # one per call
    assert again.content == b"{}"  # a PATCH body is required, even empty

    listed = prepare(
        "listEvents",
        {"limit": 5, "cursor": None, "type": "project.", "project": None,
         "created_gte": datetime(2026, 1, 2, tzinfo=UTC), "created_lt": None},
    )  # fmt: skip
    assert listed.params == [
        ("limit", "5"),
        ("type", "project."),
        ("created[gte]", "2026-01-02T00:00:00+00:00"),
    ]
    assert "Idempotency-Key" not in listed.headers and listed.content is None

    metrics = prepare("getRequestMetrics", {"group_by": ["env", "route"], "range": "1h"})
    assert ("group_by", "env,route") in metrics.params
    assert prepare("listEnvVars", {"env_id": "e", "reveal": True}).params == [("reveal", "true")]
    assert "Idempotency-Key" not in prepare("queryMetrics", {"metric": "requests"}).headers

    text = prepare("importDotenv", {"env_id": "e", "text": "A=1\n", "prune": False})
    assert text.content == b"A=1\n" and text.headers["Content-Type"].startswith("text/plain")
    assert text.params == [("prune", "false")]
    patched = prepare("patchEnvVars", {"env_id": "e", "vars": {"A": None}})
    assert json.loads(patched.content or b"") == {"A": None}
    assert prepare("rotateKey", {"key_id": "k"}).content == b"{}"
    assert prepare("cancelDeployment", {"deployment_id": "d"}).content is None
    with pytest.raises(TypeError, match="not in the operation"):
        prepare("getProject", {"project_id": "p", "colour": "red"})


def test_the_retry_policy_backs_off_with_jitter_and_honours_retry_after() -> None:
    policy = stratus.RetryPolicy(max_retries=4, initial_delay=0.5, max_delay=3.0)
    for retry, full in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0)]:
        waits = [policy.delay(retry) for _ in range(200)]
        assert all(w is not None and full / 2 <= w <= full for w in waits)
        assert len(set(waits)) > 1  # jittered
    assert policy.delay(5) is None
    assert all(2.0 <= (policy.delay(1, 2.0) or 0) <= 2.4 for _ in range(50))
    assert policy.delay(1, 61.0) is None  # a long Retry-After is not slept through
    assert [retryable(s, c) for s, c in [(409, "idempotency_key_in_use"), (409, "project_name_taken"),
            (429, "rate_limited"), (500, None), (503, None), (504, None), (501, None), (422, None)]] == [
        True, False, True, True, True, True, False, False]  # fmt: skip


def test_sse_lines_become_events() -> None:
    decoder = SSEDecoder()
    lines = ["retry: 1500", "", ": keep-alive", "", "id: 7", "event: log", "data: {\"a\":", "data: 1}", "",
             "event: end", "data:{}", ""]  # fmt: skip
    events = [e for e in map(decoder.feed, lines) if e is not None]
    assert decoder.retry == 1.5
    assert [(e.id, e.event, e.data) for e in events] == [("7", "log", '{"a":\n1}'), (None, "end", "{}")]


def test_an_error_that_is_not_a_problem_still_has_a_status_and_detail() -> None:
    response = httpx.Response(
        502, text="<html>Bad Gateway</html>", headers={"x-request-id": "req_x", "retry-after": "3"}
    )
    error = error_from_response(response)
    assert isinstance(error, stratus.ServerError)
    assert (error.status, error.code, error.request_id, error.retry_after) == (502, None, "req_x", 3.0)
    assert "Bad Gateway" in error.detail
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    dated = error_from_response(httpx.Response(503, headers={"retry-after": later}))
    assert dated.retry_after is not None and 25 < dated.retry_after <= 30
    problem = {"type": "/errors/x", "title": "T", "status": 429, "detail": "D", "code": "rate_limited",
               "request_id": "req_1"}  # fmt: skip
    limited = error_from_response(httpx.Response(429, json=problem))
    assert isinstance(limited, stratus.RateLimitError) and limited.code == "rate_limited"
    import pickle

    assert pickle.loads(pickle.dumps(limited)).detail == "D"
