"""When a member is removed from the account, their project roles go too.

Identity publishes `evt.<mode>.<account>.member.deleted`. This durable JetStream consumer
(`projects-member-departures`, shared by every projects replica through its deliver group) removes
that member from every project of the account and mode where they hold a role, as
`member_removed` events carrying the deleting request's actor (so the audit log shows who), and
acks the event only after they are saved. A crash in between redelivers it; a redelivered event
finds nothing left to remove. An event that fails is redelivered after `RETRY_DELAY`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import msgspec
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from stratus_bus import Bus
from stratus_contracts import subjects
from stratus_contracts.events import Event
from stratus_projects.handlers import ProjectsHandlers

log = logging.getLogger("stratus.projects.departures")

CONSUMER = "projects-member-departures"
SUBJECT = subjects.event("*", "*", "member", "deleted")
RETRY_DELAY = 1.0
_decoder = msgspec.json.Decoder(Event)


async def follow(bus: Bus, handlers: ProjectsHandlers, stack: contextlib.AsyncExitStack) -> None:
    """Subscribe (creating the durable consumer on first start) until the stack closes."""

    async def on_event(msg: Any) -> None:
        try:
            event = _decoder.decode(msg.data)
        except msgspec.DecodeError:
            await msg.term()  # not a public event; redelivering it would not help
            return
        member_id = event.data.get("id")
        if event.mode not in handlers.partitions or not isinstance(member_id, str):
            await msg.ack()
            return
        try:
            removed = await handlers.member_left(event.mode, event.account, member_id, event.actor)
        except Exception:
            log.exception("could not remove a departed member from its projects", extra={"member": member_id})
            await msg.nak(delay=RETRY_DELAY)
            return
        if removed:
            log.info("member left the account", extra={"member": member_id, "memberships_removed": removed})
        await msg.ack()

    subscription = await bus.js.subscribe(
        SUBJECT,
        queue=CONSUMER,  # the deliver group; nats-py requires it to be the durable name
        durable=CONSUMER,
        cb=on_event,
        manual_ack=True,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            description="removes departed members from project teams (stratus-projects)",
        ),
    )
    stack.push_async_callback(subscription.unsubscribe)
