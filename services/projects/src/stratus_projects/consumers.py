"""When a member is removed from the account, their project roles go too.

Identity publishes `evt.<mode>.<account>.member.deleted`. The durable JetStream consumer
`projects-member-departures` (one pull consumer shared by every projects replica) turns each
into a `MemberLeft` command, which removes that member from every project of the account and
mode where they hold a role — `member_removed` events carrying the deleting request's actor, so
the audit log shows who — and the event is acked only once they are committed. A crash in
between redelivers it; a redelivered event finds nothing left to remove.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec

from stratus_bus import Bus
from stratus_contracts import identity
from stratus_contracts.events import Event
from stratus_kit import Consumer, Local
from stratus_projects.handlers import MemberLeft

log = logging.getLogger("stratus.projects.departures")

DURABLE = "projects-member-departures"
_decoder = msgspec.json.Decoder(Event[identity.MemberView])


def departures(bus: Bus, local: Local) -> Consumer:
    async def handle(msgs: list[Any]) -> list[bool]:
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[Any] | None] = []
        for msg in msgs:
            try:
                event = _decoder.decode(msg.data)
            except msgspec.DecodeError:
                waiting.append(None)  # not a member event: nothing to do, and redelivery won't help
                continue
            if event.mode not in local.partitions:
                waiting.append(None)
                continue
            future: asyncio.Future[Any] = loop.create_future()

            def done(result: Any, error: BaseException | None, future: asyncio.Future[Any] = future) -> None:
                loop.call_soon_threadsafe(_settle, future, result, error)

            local.registry.dispatch(
                MemberLeft(
                    mode=event.mode, account=event.account, member_id=event.data.id, actor=event.actor
                ),
                done,
            )
            waiting.append(future)
        outcomes = []
        for future in waiting:
            if future is None:
                outcomes.append(True)
                continue
            try:
                removed = await future
            except Exception:
                log.exception("could not remove a departed member from its projects")
                outcomes.append(False)
                continue
            if removed:
                log.info("member left the account", extra={"memberships_removed": removed})
            outcomes.append(True)
        return outcomes

    return Consumer(
        bus,
        durable=DURABLE,
        subject=identity.MEMBER_DELETED.subject("*", "*"),
        handle=handle,
        description="removes departed members from project teams (stratus-projects)",
    )


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


__all__ = ["DURABLE", "departures"]
