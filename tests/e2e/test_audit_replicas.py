"""Each replica of the audit service keeps the whole event feed in its own files, read through
its own durable consumer, and answers only once it has caught up with the stream: replicas need
not share a disk (on Kubernetes each has its own volume), and a replica restarted with nothing
never answers from an empty view."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import nats
import pytest

from stratus_contracts import subjects
from stratus_contracts.events import Event
from stratus_contracts.ids import new_id
from stratus_testing import Stack, wait_until

PADDING = 5000  # events of another account, so that a replica's catch-up takes a while


def _projects_in(path: Path) -> set[str]:
    if not path.exists():
        return set()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT event FROM events WHERE type = 'project.created'").fetchall()
    except sqlite3.OperationalError:
        return set()  # not created yet
    finally:
        db.close()
    return {json.loads(event)["data"]["id"] for (event,) in rows}


def _listed(client: httpx.Client) -> set[str]:
    page = client.get("/v1/events", params={"type": "project.created", "limit": 100})
    assert page.status_code == 200, page.text
    return {e["data"]["id"] for e in page.json()["data"]}


async def _pad(url: str, count: int) -> None:
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        account = new_id("acct")
        for _ in range(count):
            e = Event(
                id=new_id("evt"),
                type="project.updated",
                created=datetime.now(UTC),
                mode="live",
                account=account,
                data={"id": new_id("prj"), "object": "project"},
            )
            await js.publish(subjects.event(e.mode, e.account, "project", "updated"), msgspec.json.encode(e))
    finally:
        await nc.close()


@pytest.fixture
def two_audits(stack: Stack) -> list[int]:
    pids = stack.service_pids("audit")
    if len(pids) < 2:
        pytest.skip("the session stack runs one replica (STRATUS_TEST_REPLICAS=1)")
    return pids


def test_each_replica_holds_the_whole_feed_in_its_own_files(
    stack: Stack, live: httpx.Client, two_audits: list[int]
) -> None:
    made = {
        live.post("/v1/projects", json={"name": f"feed-{uuid.uuid4().hex[:6]}"}).json()["data"]["id"]
        for _ in range(5)
    }
    files = [stack.data_dir / "audit-live.audit.read.db", stack.data_dir / "audit-2-live.audit.read.db"]
    for path in files:
        wait_until(lambda path=path: made <= _projects_in(path), timeout=30, message=f"{path.name}")


def test_a_replica_restarted_empty_answers_only_once_it_has_caught_up(
    stack: Stack, live: httpx.Client, two_audits: list[int]
) -> None:
    asyncio.run(_pad(stack.nats_url, PADDING))  # before the projects: a re-read reaches them last
    made = {
        live.post("/v1/projects", json={"name": f"gate-{uuid.uuid4().hex[:6]}"}).json()["data"]["id"]
        for _ in range(3)
    }
    wait_until(lambda: made <= _listed(live), timeout=30, message="the feed lists the projects")
    own = stack.data_dir / "audit-2-live.audit.read.db"
    wait_until(lambda: made <= _projects_in(own), timeout=60, message="audit-2 has them")
    old = stack.service_pid("audit-2")
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: not _alive(old), timeout=10, message="audit-2 to die")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{own}{suffix}").unlink(missing_ok=True)  # its volume lost with it
    stack.wait_restarted("audit-2", old)

    # While it re-reads the stream (thousands of events), every answer lists every project:
    # the replica that has nothing yet is not in the queue group.
    answers = 0
    while made - _projects_in(own):
        with stack.client(stack.live_key) as client:
            assert made <= _listed(client)
        answers += 1
    assert answers > 0, "audit-2 caught up before a single query was made: pad the stream more"
    for _ in range(20):
        with stack.client(stack.live_key) as client:
            assert made <= _listed(client)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
