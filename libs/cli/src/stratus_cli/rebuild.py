"""`stratus rebuild <service>`: drop a service's read models and replay them from their source."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator

import nats

from stratus_bus import Bus, RemoteError, ServiceTimeout, ServiceUnavailable
from stratus_cli import natsserver, stackfile
from stratus_cli.config import data_dir
from stratus_contracts import services
from stratus_contracts.reply import RebuildResult

# A rebuild replays every event; give it far longer than an ordinary request.
TIMEOUT = float(os.environ.get("STRATUS_REBUILD_TIMEOUT", "300"))


class NotRunning(Exception):
    """The stack cannot be reached."""


def locate_bus() -> str:
    """NATS_URL when set, else the running stack's bus from `<data>/stack.json`."""
    if url := os.environ.get("NATS_URL"):
        return url
    directory = data_dir()
    info = stackfile.read_stack(directory)
    if not info or not info.get("nats_url"):
        raise NotRunning(
            f"the stack is not running: no NATS_URL and no {stackfile.stack_path(directory)} "
            "(start it with `stratus up`, or set STRATUS_DATA_DIR to its data dir)"
        )
    return str(info["nats_url"])


@contextlib.asynccontextmanager
async def operator_bus(service: str) -> AsyncIterator[Bus]:
    """The running stack's bus for an operator command aimed at `service`; NotRunning when the
    bus cannot be reached or nobody answers for that service."""
    url = locate_bus()
    try:
        nc = await natsserver.connect_once(url, "stratus-cli", timeout=3.0)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise NotRunning(f"the stack is not running: cannot reach NATS at {url} ({exc!r})") from exc
    try:
        yield Bus(nc)
    except ServiceUnavailable as exc:
        raise NotRunning(f"the {service} service is not running (nobody answers on {url})") from exc
    finally:
        await natsserver.close_quietly(nc)


async def rebuild(view: str) -> RebuildResult:
    async with operator_bus(view) as bus:
        return await bus.call(services.BY_NAME[view].rebuild_message()(), timeout=TIMEOUT)


def main(view: str) -> int:
    try:
        result = asyncio.run(rebuild(view))
    except NotRunning as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 1
    except ServiceTimeout:
        print(f"stratus: the {view} service did not finish within {TIMEOUT:g}s", file=sys.stderr)
        return 1
    except RemoteError as exc:
        print(f"stratus: rebuild failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.modes, sort_keys=True))
    return 0
