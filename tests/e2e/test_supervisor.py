"""`stratus up` as an operator sees it: crash restarts, clean shutdown, restarts that keep data,
and events committed before a crash reaching JetStream exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import msgspec
import nats
import pytest

from stratus_contracts.events import Event
from stratus_contracts.services import PROCESSES
from stratus_testing import Stack, wait_until


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("service", ["projects", "identity", "gateway"])
def test_killed_service_is_restarted_without_losing_projects(tmp_path: Path, service: str) -> None:
    with Stack(tmp_path / "data") as stack, stack.client(stack.live_key) as client:
        made = [client.post("/v1/projects", json={"name": f"keep-{i}"}).json()["data"] for i in range(3)]
        old = stack.service_pid(service)
        os.kill(old, signal.SIGKILL)
        new = stack.wait_restarted(service, old)
        assert new != old and pid_alive(new)
        for project in made:
            assert client.get(f"/v1/projects/{project['id']}").json()["data"] == project
        listed = client.get("/v1/projects", params={"sort": "created"}).json()["data"]
        assert [p["id"] for p in listed] == [p["id"] for p in made]
        assert service in stack.logs(400) and "restart" in stack.logs(400)


def test_sigterm_stops_everything_and_a_restart_keeps_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Stack(data) as first, first.client(first.live_key) as client:
        project = client.post("/v1/projects", json={"name": "durable"}).json()["data"]
        credentials = (data / "credentials").read_text()
        children = [first.service_pid(s) for s in ("identity", "projects", "gateway")]
        assert first.stop() == 0
    assert not any(pid_alive(pid) for pid in children)
    assert not (data / "stack.json").exists()
    assert (data / "credentials").stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700  # stores, views and keys: owner only
    with Stack(data) as second, second.client(second.live_key) as client:
        assert (data / "credentials").read_text() == credentials
        assert client.get(f"/v1/projects/{project['id']}").json()["data"] == project
        assert client.get("/v1/me").json()["data"]["account"] == second.account_id


def exit_codes(stack: Stack) -> dict[str, list[int]]:
    """Each child's exit codes as the supervisor logged them (a JSON line per exit)."""
    codes: dict[str, list[int]] = {}
    for line in stack.stderr_path.read_text().splitlines():
        record = json.loads(line)  # every line on the stack's stderr is JSON
        if record.get("logger") == "stratus.supervisor" and "exit_code" in record:
            codes.setdefault(record["child"], []).append(record["exit_code"])
    return codes


def test_every_service_exits_0_on_sigterm_with_or_without_the_bus(tmp_path: Path) -> None:
    services = [s.name for s in PROCESSES]
    with Stack(tmp_path / "data") as stack:
        # With NATS up: each service drains and exits 0 (and is restarted).
        for name in services:
            old = stack.service_pid(name)
            os.kill(old, signal.SIGTERM)
            stack.wait_restarted(name, old)
        # With NATS gone (killed): the drain cannot finish; still a clean exit, no traceback.
        pids = {name: stack.service_pid(name) for name in services}
        os.kill(stack.info()["nats_pid"], signal.SIGKILL)
        for pid in pids.values():
            os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not any(pid_alive(pid) for pid in pids.values()), timeout=30)
        assert stack.stop() == 0
    codes = exit_codes(stack)
    for name in services:
        # Every exit the test's own SIGTERMs caused, with the bus up and with it gone, is 0.
        *signalled, at_stop = codes[name]
        assert len(signalled) == 2 and set(signalled) == {0}, (name, codes[name])
        # The stack's stop reaches the replacements the supervisor has just started: one still
        # in Python's own start-up, before any of our code runs, dies of the signal instead.
        assert at_stop in (0, -signal.SIGTERM), (name, codes[name])
    # nats-server's own plain-text lines go to a file of their own, not between the JSON lines.
    assert "Starting nats-server" in (tmp_path / "data" / "nats-server.log").read_text()


async def stream_events(nats_url: str) -> list[Event]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("EVENTS")
        if info.state.messages == 0:
            return []
        events = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg("EVENTS", seq)
            events.append(msgspec.json.decode(msg.data, type=Event))
        return events
    finally:
        await nc.close()


def created_events(stack: Stack, project_id: str) -> list[Event]:
    events = asyncio.run(stream_events(stack.nats_url))
    return [e for e in events if e.type == "project.created" and e.data["id"] == project_id]


def test_event_committed_before_a_crash_arrives_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # The relay is off: the project commits, its event is not published, then the process dies.
    with Stack(data, env={"STRATUS_RELAY_ENABLED": "0"}) as stack, stack.client(stack.live_key) as client:
        project = client.post("/v1/projects", json={"name": "outbox"}).json()["data"]
        assert created_events(stack, project["id"]) == []
        os.kill(stack.service_pid("projects"), signal.SIGKILL)
        stack.kill()
    # Back with the relay on: the committed event is published from the store's log.
    with Stack(data) as stack:
        wait_until(lambda: created_events(stack, project["id"]), timeout=30, message="event published")
        assert len(created_events(stack, project["id"])) == 1
        old = stack.service_pid("projects")
        os.kill(old, signal.SIGKILL)
        stack.wait_restarted("projects", old)
        with stack.client(stack.live_key) as client:
            client.post("/v1/projects", json={"name": "after-crash"})
        # The restarted relay has published the newer event, and the old one is still there once.
        wait_until(
            lambda: any(e.data["name"] == "after-crash" for e in asyncio.run(stream_events(stack.nats_url))),
            timeout=30,
            message="post-restart event",
        )
        assert len(created_events(stack, project["id"])) == 1
