"""What projects does about other services' events: two durable JetStream consumers.

**Members who leave.** Identity publishes `evt.<mode>.<account>.member.deleted`. The durable
consumer `projects-member-departures` (one pull consumer shared by every projects replica) turns
each into a `MemberLeft` command, which removes that member from every project of the account and
mode where they hold a role — `member_removed` events carrying the deleting request's actor, so
the audit log shows who — and the event is acked only once they are committed. A crash in
between redelivers it; a redelivered event finds nothing left to remove.

**Where an environment is served.** The deployments service publishes `deployment.succeeded`
and `deployment.rolled_back` when a deployment starts serving its environment. The durable
consumer `projects-deployment-urls` turns each into a `SetServingDeployment` command, which
records the deployment's id and URL on the environment (`env.updated`, `changed` naming them).
Deployments' ready times order them: an older deployment's event that arrives after a newer
one's changes nothing, and neither does a redelivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

import msgspec

from stratus_bus import Bus
from stratus_contracts import deployments, identity, subjects
from stratus_contracts.events import Event
from stratus_kit import Consumer, Local
from stratus_projects.environments.handlers import SetServingDeployment
from stratus_projects.handlers import MemberLeft

log = logging.getLogger("stratus.projects.consumers")

DURABLE = "projects-member-departures"
DEPLOYMENTS_DURABLE = "projects-deployment-urls"
_members = msgspec.json.Decoder(Event[identity.MemberView])
_deployment_events = msgspec.json.Decoder(Event[msgspec.Raw])
_deployment = msgspec.json.Decoder(deployments.Deployment)
# The deployment events that make a deployment the one serving its environment.
SERVING = frozenset({deployments.DEPLOYMENT_SUCCEEDED.name, deployments.DEPLOYMENT_ROLLED_BACK.name})

# A message's command (None: nothing to do, ack it).
ToCommand = Callable[[Any, Local], Any | None]


def _handler(
    local: Local, to_command: ToCommand, what: str, field: str
) -> Callable[[list[Any]], Awaitable[list[bool]]]:
    """`handle(msgs)` for a Consumer: each message's command dispatched to the partitions'
    writers at once (they commit together), then awaited; a message is acked only once its
    command is committed (or it needs none), and a failed command is retried. A result that
    changed something is logged as `what`, with the result as `field`."""

    async def handle(msgs: list[Any]) -> list[bool]:
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[Any] | None] = []
        for msg in msgs:
            command = to_command(msg, local)
            if command is None:
                waiting.append(None)
                continue
            future: asyncio.Future[Any] = loop.create_future()

            def done(result: Any, error: BaseException | None, future: asyncio.Future[Any] = future) -> None:
                loop.call_soon_threadsafe(_settle, future, result, error)

            local.registry.dispatch(command, done)
            waiting.append(future)
        outcomes = []
        for future in waiting:
            if future is None:
                outcomes.append(True)
                continue
            try:
                result = await future
            except Exception:
                log.exception("could not apply an event", extra={"consumer_effect": what})
                outcomes.append(False)
                continue
            if result:
                log.info(what, extra={field: result})
            outcomes.append(True)
        return outcomes

    return handle


def _member_left(msg: Any, local: Local) -> MemberLeft | None:
    try:
        event = _members.decode(msg.data)
    except msgspec.DecodeError:
        return None  # not a member event: nothing to do, and redelivery won't help
    if event.mode not in local.partitions:
        return None
    return MemberLeft(mode=event.mode, account=event.account, member_id=event.data.id, actor=event.actor)


def departures(bus: Bus, local: Local) -> Consumer:
    return Consumer(
        bus,
        durable=DURABLE,
        subject=identity.MEMBER_DELETED.subject("*", "*"),
        handle=_handler(local, _member_left, "member left the account", "memberships_removed"),
        description="removes departed members from project teams (stratus-projects)",
    )


def _serving(msg: Any, local: Local) -> SetServingDeployment | None:
    try:
        event = _deployment_events.decode(msg.data)
        if event.type not in SERVING or event.mode not in local.partitions:
            return None  # another step of a deployment's life: the URL stays
        deployment = _deployment.decode(event.data)
    except msgspec.DecodeError:
        return None  # malformed: redelivery won't help
    if deployment.mode != event.mode:
        return None
    # A ready deployment has its ready time; `updated` is the closest thing when it has none.
    ready_at = deployment.ready_at or deployment.updated
    if ready_at.tzinfo is None:  # compared with aware times: an offset-less one is taken as UTC
        ready_at = ready_at.replace(tzinfo=UTC)
    return SetServingDeployment(
        mode=event.mode,
        account=event.account,
        project_id=deployment.project,
        env_id=deployment.env_id,
        deployment_id=deployment.id,
        url=deployment.url,
        ready_at=ready_at,
        actor=event.actor,
    )


def deployment_urls(bus: Bus, local: Local) -> Consumer:
    # One consumer for both event types: a consumer filters on one subject, and every
    # `deployment.*` event carries a Deployment, so the others are acked unread.
    return Consumer(
        bus,
        durable=DEPLOYMENTS_DURABLE,
        subject=subjects.event("*", "*", deployments.DEPLOYMENT_SUCCEEDED.aggregate, "*"),
        handle=_handler(local, _serving, "another deployment serves an environment", "changed"),
        description="records the deployment serving each environment and its URL (stratus-projects)",
    )


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


__all__ = ["DEPLOYMENTS_DURABLE", "DURABLE", "departures", "deployment_urls"]
