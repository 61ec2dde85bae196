"""The deliveries consumer: JetStream `EVENTS` → one delivery per event and endpoint that wants
it, through the durable consumer `webhooks` (the kit's pull consumer).

Each message is acked only once its deliveries are committed (`ScheduleDeliveries`); a crash in
between redelivers it, and delivery ids derived from (endpoint, event) make the second pass make
none twice. The body kept is the event exactly as published, so every attempt and every
redelivery sends the same bytes under the same `webhook-id`.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from stratus_bus import Bus
from stratus_contracts import subjects
from stratus_contracts.events import Event
from stratus_kit import Consumer, Local
from stratus_webhooks import handlers as h

log = logging.getLogger("stratus.webhooks")

CONSUMER = "webhooks"
_decoder = msgspec.json.Decoder(Event[dict[str, Any]])


def project_of(event: Event[dict[str, Any]]) -> str | None:
    data = event.data
    for key in ("project_id", "project"):
        if isinstance(data.get(key), str):
            return data[key]
    if data.get("object") == "project" and isinstance(data.get("id"), str):
        return data["id"]
    return None


class DeliveriesConsumer(Consumer):
    """Made the first time at the stream's end (`DeliverPolicy.NEW`): an account's history from
    before the service existed is not delivered to endpoints made since; from then on the
    durable consumer's position carries over restarts, so nothing published later is missed."""

    def _config(self, after: int) -> ConsumerConfig:
        config = super()._config(after)
        if not after:
            config.deliver_policy = DeliverPolicy.NEW
        return config


def deliveries_consumer(bus: Bus, local: Local) -> Consumer:
    async def handle(msgs: list[Msg]) -> list[bool]:
        done: list[bool] = []
        for msg in msgs:
            try:
                event = _decoder.decode(msg.data)
            except msgspec.DecodeError:
                log.warning("skipping an undecodable message", extra={"subject": msg.subject})
                done.append(True)
                continue
            if event.mode not in local.partitions:
                done.append(True)
                continue
            try:
                await local.ask(
                    h.ScheduleDeliveries(
                        mode=event.mode,
                        account=event.account,
                        event_id=event.id,
                        event_type=event.type,
                        project=project_of(event),
                        body=msg.data,
                    )
                )
            except Exception:
                log.exception("could not schedule the deliveries of %s", event.id)
                done.append(False)  # redelivered after the consumer's delay
                continue
            done.append(True)
        return done

    return DeliveriesConsumer(
        bus,
        durable=CONSUMER,
        subject=subjects.EVENTS_SUBJECTS,
        handle=handle,
        description="webhook deliveries (stratus-webhooks)",
    )
