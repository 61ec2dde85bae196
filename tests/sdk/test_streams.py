"""Live streams through a TCP proxy that really drops the connection mid-stream: a deployment's
log (`deployments.logs(id, follow=True)`) and the event feed (`events.stream()`) must resume
with `Last-Event-ID` after the drop, and every line or event arrive exactly once, in order."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import stratus
from stratus_testing import Stack, apps, wait_for

from .support import TcpProxy, new_account

LINES = 3000  # build lines: about 330 kB of SSE, so a cut at 60 kB is well inside the build
CUT_AFTER = 60_000


def test_a_dropped_log_stream_resumes_after_the_last_line(stack: Stack, tmp_path: Path) -> None:
    repo = apps.make_repo(tmp_path / "repo")
    sha = apps.commit_chatty_build(repo, LINES)
    with stratus.Client(stack.test_key, base_url=stack.base_url) as client:
        project = client.projects.create(name=f"logs-{uuid.uuid4().hex[:8]}")
        client.projects.update(
            project.id,
            build={
                "repo_url": str(repo),
                "build_command": apps.BUILD_COMMAND,
                "start_command": apps.START_COMMAND,
                "health_check_path": apps.HEALTH_PATH,
            },
        )
        deployment = client.deployments.create(project=project.id, sha=sha)

    lines: list[stratus.models.LogLine] = []
    first_after = None  # the first line read after the resume
    with (
        TcpProxy(stack.port, cut_after=CUT_AFTER) as proxy,
        stratus.Client(stack.test_key, base_url=proxy.url) as client,
        client.deployments.logs(deployment.id, follow=True) as stream,
    ):
        for line in stream:
            lines.append(line)
            if line.stream == "stdout" and "listening on port" in line.text:
                break  # the app is up: its first runtime line came after every build line
            if stream.reconnects and first_after is None:
                first_after = line.seq
        resumed = [r for r in proxy.requests() if "last-event-id" in r[2]]
        reconnects = stream.reconnects

    assert reconnects == 1 and len(proxy.connections) >= 2
    cut = bytes(proxy.connections[0].received)
    assert len(cut) > CUT_AFTER and cut.endswith(b"}\n")  # cut inside an event, before its blank line
    # The resume asked for what came after the last whole line before the cut.
    assert len(resumed) == 1
    last_before = int(resumed[0][2]["last-event-id"])
    assert 0 < last_before < LINES and first_after == last_before + 1
    seqs = [line.seq for line in lines]
    assert seqs == list(range(1, len(seqs) + 1)), "a line missed or repeated"
    chatty = [line.text for line in lines if line.text.startswith("line ")]
    assert chatty == [apps.chatty_line(n) for n in range(LINES)]


def test_a_dropped_event_stream_resumes_without_gaps(stack: Stack) -> None:
    key = new_account(stack, "sdk-events")["keys"]["test"]
    names = [f"ev-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]

    async def run() -> tuple[list[stratus.models.Event], list[str], list[str], int]:
        with TcpProxy(stack.port) as proxy:
            async with (
                stratus.AsyncClient(key, base_url=proxy.url) as via_proxy,
                stratus.AsyncClient(key, base_url=stack.base_url) as direct,
            ):
                stream = via_proxy.events.stream(type="project.created")
                got: list[stratus.models.Event] = []

                async def read() -> None:
                    async for event in stream:
                        got.append(event)
                        if len(got) == 1:
                            # Cut while it waits for more, and make the rest while it is away.
                            assert proxy.cut() >= 1
                            for name in names[1:]:
                                await direct.projects.create(name=name)
                        if len(got) == len(names):
                            return

                reader = asyncio.create_task(read())
                # The stream starts at "now": make the first event once its answer has begun.
                await wait_for(
                    lambda: any(b"text/event-stream" in c.received for c in proxy.connections), timeout=30
                )
                await direct.projects.create(name=names[0])
                async with asyncio.timeout(60):
                    await reader
                await stream.aclose()
                listed = [e.id async for e in direct.events.list(type="project.created")]
        resumed = [r[2]["last-event-id"] for r in proxy.requests() if "last-event-id" in r[2]]
        return got, listed, resumed, stream.reconnects

    got, listed, resumed, reconnects = asyncio.run(run())
    assert reconnects >= 1 and resumed[0] == got[0].id  # resumed after the one event it had
    assert [e.id for e in got] == list(reversed(listed)), "an event missed, repeated or out of order"
    assert [e.data["name"] for e in got] == names
