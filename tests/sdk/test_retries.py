"""Retries against real failures: a 503 while the projects service is down and being restarted,
a 429 from a tiny rate-limit plan, an answer lost on a dropped connection after the gateway
applied the request, and a 409 `idempotency_key_in_use` while a first attempt still runs. Each
time the SDK must send the same Idempotency-Key on every attempt and exactly one resource must
result. What the SDK sent is recorded with httpx event hooks on its own client, or by a TCP
proxy between it and the gateway."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest

import stratus
from stratus_testing import Stack, free_port, wait_until
from stratus_testing.processes import exited

from .support import Recorder, TcpProxy, new_account

# `free`: one request per three seconds, so a 429 is certain right after a refusal and its
# Retry-After short enough to wait out. The bootstrap account stays `internal` (unlimited).
STACK_ENV = {
    "STRATUS_PLANS": json.dumps({"free": {"limit": 1, "period": 3}, "anonymous": None}),
    "STRATUS_REQUEST_TIMEOUT": "5",
}
PATIENT = stratus.RetryPolicy(max_retries=12, initial_delay=0.2, max_delay=2.0)


def projects_named(stack: Stack, key: str, name: str) -> list[dict]:
    with stack.client(key) as raw:
        response = raw.get("/v1/projects", params={"name": name})
        assert response.status_code == 200, response.text
        return response.json()["data"]


def one_key(attempts: list[dict]) -> str:
    keys = {a["headers"].get("idempotency-key") for a in attempts}
    assert len(keys) == 1 and None not in keys, attempts
    return keys.pop()


def test_a_503_while_projects_restarts_is_retried_with_the_same_key(stack: Stack) -> None:
    recorder = Recorder()
    name = f"after-503-{uuid.uuid4().hex[:8]}"
    with (
        recorder.client() as http,
        stratus.Client(
            stack.test_key, base_url=stack.base_url, http_client=http, retry_policy=PATIENT
        ) as client,
    ):
        old = stack.service_pids("projects")
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        # Gone from the bus once its connection is closed (when the process has exited): the
        # gateway answers 503, no responders, until the supervisor's restart is up again.
        wait_until(lambda: all(exited(pid) for pid in old), timeout=10, message="projects to exit")
        with httpx.Client(
            base_url=stack.base_url, headers=stack.auth(stack.test_key), timeout=2.0, trust_env=False
        ) as raw:
            wait_until(
                lambda: raw.get("/v1/projects").status_code == 503,
                timeout=10,
                message="a 503",
                ignore=(httpx.TimeoutException,),
            )
        project = client.projects.create(name=name)
    attempts = recorder.writes("/v1/projects")
    assert attempts[0]["status"] == 503 and attempts[0]["code"] == "service_unavailable"
    assert attempts[-1]["status"] == 201 and len(attempts) >= 2
    one_key(attempts)
    assert [p["id"] for p in projects_named(stack, stack.test_key, name)] == [project.id]
    assert set(stack.service_pids("projects")).isdisjoint(old)


def test_a_429_is_retried_after_retry_after_with_the_same_key(stack: Stack) -> None:
    limited = new_account(stack, "sdk-429", plan="free")["keys"]["test"]
    with stack.client(limited) as raw:
        # Spend the budget: once a request is refused, the next ones are too for a while.
        wait_until(lambda: raw.get("/v1/me").status_code == 429, timeout=20, message="a 429")
    recorder = Recorder()
    name = f"after-429-{uuid.uuid4().hex[:8]}"
    with (
        recorder.client() as http,
        stratus.Client(limited, base_url=stack.base_url, http_client=http, retry_policy=PATIENT) as client,
    ):
        project = client.projects.create(name=name)
    attempts = recorder.writes("/v1/projects")
    assert attempts[0]["status"] == 429 and attempts[0]["code"] == "rate_limited"
    assert float(attempts[0]["response_headers"]["retry-after"]) >= 1
    assert attempts[-1]["status"] == 201
    one_key(attempts)
    with stratus.Client(limited, base_url=stack.base_url, retry_policy=PATIENT) as client:
        assert [p.id for p in client.projects.list(name=name)] == [project.id]


def test_an_answer_lost_with_its_connection_is_replayed_not_applied_twice(stack: Stack) -> None:
    name = f"lost-answer-{uuid.uuid4().hex[:8]}"
    with (
        TcpProxy(stack.port, drop_first_answer=True) as proxy,
        stratus.Client(stack.test_key, base_url=proxy.url, retry_policy=PATIENT) as client,
    ):
        project = client.projects.create(name=name)
        first, retry = proxy.connections[0], proxy.connections[1]
    sent = [r for conn in (first, retry) for r in conn.requests() if r[0] == "POST"]
    assert len(sent) == 2
    assert sent[0][2]["idempotency-key"] == sent[1][2]["idempotency-key"]
    assert first.received == b""  # the client never saw the first answer
    assert b"idempotent-replayed: true" in bytes(retry.received).lower()
    assert [p["id"] for p in projects_named(stack, stack.test_key, name)] == [project.id]


@contextlib.contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """The processes stopped (SIGSTOP): still on the bus, answering nothing until SIGCONT."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def test_a_409_in_use_while_the_first_attempt_runs_is_retried_until_its_answer(stack: Stack) -> None:
    recorder = Recorder()
    name = f"in-use-{uuid.uuid4().hex[:8]}"
    pids = stack.service_pids("projects")
    in_use = threading.Event()

    def resume_once_in_use() -> None:
        wait_until(
            lambda: any(a.get("code") == "idempotency_key_in_use" for a in recorder.attempts), timeout=30
        )
        in_use.set()

    with (
        recorder.client() as http,
        stratus.Client(
            stack.test_key, base_url=stack.base_url, http_client=http, retry_policy=PATIENT, timeout=1.0
        ) as client,
    ):
        watcher = threading.Thread(target=resume_once_in_use)
        with paused(pids):
            # The first attempt reaches the gateway, which waits on the paused service; the
            # client gives up on it after 1 s and retries with the same key: 409 while it runs.
            watcher.start()
            done: list[stratus.models.Project] = []
            creator = threading.Thread(target=lambda: done.append(client.projects.create(name=name)))
            creator.start()
            assert in_use.wait(30), recorder.attempts
        creator.join(30)
        watcher.join(5)
    assert done, recorder.attempts
    attempts = recorder.writes("/v1/projects")
    assert "status" not in attempts[0]  # timed out: no answer
    assert any(a.get("code") == "idempotency_key_in_use" for a in attempts)
    assert attempts[-1]["status"] == 201
    one_key(attempts)
    assert [p["id"] for p in projects_named(stack, stack.test_key, name)] == [done[0].id]


def test_errors_that_retrying_cannot_fix_are_raised_at_once(stack: Stack) -> None:
    recorder = Recorder()
    with (
        recorder.client() as http,
        stratus.Client(
            stack.test_key, base_url=stack.base_url, http_client=http, retry_policy=PATIENT
        ) as client,
    ):
        with pytest.raises(stratus.NotFoundError):
            client.projects.get("prj_nope")
        with pytest.raises(stratus.ValidationError):
            client.projects.create(name="Not Valid")
    assert [a["status"] for a in recorder.attempts] == [404, 422]
    # Nothing listening: connection errors are retried, then raised as APIConnectionError.
    quick = stratus.RetryPolicy(max_retries=2, initial_delay=0.01)
    recorder = Recorder()
    with (
        recorder.client() as http,
        stratus.Client(
            stack.test_key, base_url=f"http://127.0.0.1:{free_port()}", http_client=http, retry_policy=quick
        ) as client,
        pytest.raises(stratus.APIConnectionError) as failed,
    ):
        client.me()
    assert isinstance(failed.value.__cause__, httpx.ConnectError)
    assert len(recorder.attempts) == 3
