"""Writes through the whole stack while the projects service is killed, and while it runs as two
replicas: every acknowledged create is there afterwards, exactly once, and a read right after a
write shows it whichever replica answers."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from stratus_testing import Stack

# What a client may see while a service restarts; it retries each with the same Idempotency-Key.
RETRYABLE = {"idempotency_key_in_use", "service_unavailable", "service_timeout"}


async def _create_until_acknowledged(
    client: httpx.AsyncClient, name: str, answers: dict[str, set[str]], retried: list[str]
) -> None:
    key = {"Idempotency-Key": f"durable-{name}"}
    while True:
        try:
            response = await client.post("/v1/projects", json={"name": name}, headers=key)
        except httpx.TransportError:
            continue  # the connection was cut: try again, as any client would
        if response.status_code == 201:
            answers.setdefault(name, set()).add(response.json()["data"]["id"])
            return
        code = response.json().get("code")
        assert code in RETRYABLE, response.text
        retried.append(code)
        await asyncio.sleep(0.1)  # the client's backoff before its retry


async def _list_names(client: httpx.AsyncClient) -> dict[str, list[str]]:
    listed: dict[str, list[str]] = {}
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/projects", params=params)).json()
        for project in page["data"]:
            listed.setdefault(project["name"], []).append(project["id"])
        if not page["meta"]["has_more"]:
            return listed
        cursor = page["meta"]["next_cursor"]


def test_kill_9_during_concurrent_creates_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    names = [f"durable-{i}" for i in range(240)]
    answers: dict[str, set[str]] = {}
    retried: list[str] = []
    with Stack(tmp_path / "data", env={"STRATUS_REQUEST_TIMEOUT": "2"}) as stack:

        async def run() -> None:
            limit = asyncio.Semaphore(16)
            killed = asyncio.Event()

            async def one(client: httpx.AsyncClient, name: str) -> None:
                async with limit:
                    await _create_until_acknowledged(client, name, answers, retried)
                if len(answers) >= 60 and not killed.is_set():
                    killed.set()
                    os.kill(stack.service_pid("projects"), signal.SIGKILL)  # mid-stream, others in flight

            async with stack.async_client(stack.live_key) as client:
                await asyncio.gather(*(one(client, name) for name in names))
                assert killed.is_set() and retried  # the kill cut requests off, which were retried
                listed = await _list_names(client)
            # Every create was acknowledged once the service was back, each with one project id
            # however often it was retried, and the list holds each exactly once.
            assert sorted(listed) == sorted(names)
            for name in names:
                assert len(answers[name]) == 1, (name, answers[name])
                assert listed[name] == list(answers[name])

        asyncio.run(run())
        assert stack.service_pid("projects")  # restarted by `stratus up`


def test_two_replicas_read_each_others_writes_at_once(tmp_path: Path) -> None:
    with Stack(tmp_path / "data") as stack, stack.extra_service("projects") as second:
        with stack.client(stack.live_key) as client:
            project = client.post("/v1/projects", json={"name": "replicated"}).json()["data"]
            path = f"/v1/projects/{project['id']}"
            # Requests go to either replica (one queue group); each read follows the write before
            # it, whichever replica cached the project earlier.
            for n in range(40):
                changed = client.patch(path, json={"description": f"v{n}"})
                assert changed.status_code == 200, changed.text
                seen = client.get(path).json()["data"]
                assert (seen["description"], seen["version"]) == (f"v{n}", changed.json()["data"]["version"])
                listed = client.get("/v1/projects", params={"name": "replicated"}).json()["data"]
                assert [p["description"] for p in listed] == [f"v{n}"]
        assert os.path.exists(f"/proc/{second}")  # the second replica served alongside, and lives
