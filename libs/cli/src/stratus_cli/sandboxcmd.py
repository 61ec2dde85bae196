"""`stratus sandbox reset`: drop every service's test-mode data now (`stratus_kit.sandbox`).

It raises the sandbox epoch on the running stack's bus, then waits until every service answers
its ping from the new epoch, and prints `{"epoch": n, "services": {name: epoch}}`.
"""

from __future__ import annotations

import asyncio
import json
import sys

from stratus_bus import ServiceTimeout, ServiceUnavailable
from stratus_cli.rebuild import NotRunning, operator_bus
from stratus_contracts import services, subjects
from stratus_contracts.reply import Ping, Pong
from stratus_kit import sandbox

WAIT = 30.0


async def reset() -> dict[str, object]:
    async with operator_bus("identity") as bus:
        epoch = await sandbox.reset(bus)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        seen: dict[str, int | None] = {}
        for spec in services.SERVICES:
            seen[spec.name] = None
            while loop.time() < deadline:
                try:
                    pong = await bus.call(Ping(), subject=subjects.ping(spec.name), returns=Pong, timeout=2.0)
                except (ServiceUnavailable, ServiceTimeout):
                    await asyncio.sleep(0.1)
                    continue
                seen[spec.name] = pong.stats.get("sandbox.epoch")
                if (seen[spec.name] or 0) >= epoch:
                    break
                await asyncio.sleep(0.05)
        return {"epoch": epoch, "services": seen}


def main_reset() -> int:
    try:
        result = asyncio.run(reset())
    except NotRunning as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    behind = [name for name, epoch in result["services"].items() if (epoch or 0) < result["epoch"]]  # type: ignore[union-attr]
    if behind:
        print(f"stratus: not reset yet: {', '.join(behind)}", file=sys.stderr)
        return 1
    return 0
