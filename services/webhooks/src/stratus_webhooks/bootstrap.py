"""The webhooks service as the kit runs it: one partition per mode holding webhook endpoints and
their deliveries, the read model and publisher, the table of message type → handler (made with
the keyring, which seals signing secrets under the master key), the consumer that turns events
into deliveries, the dispatcher that sends them, and the service's clock."""

from __future__ import annotations

import logging
from typing import Any

from stratus_contracts import webhooks as c
from stratus_kit import Service
from stratus_kit.keyring import Keyring
from stratus_webhooks import consumers, dispatch, domain, handlers, read_model, views
from stratus_webhooks.clock import CLOCK

log = logging.getLogger("stratus.webhooks")


def dependencies() -> dict[str, Any]:
    keyring = Keyring.from_env()  # a malformed key stops the service here
    if keyring.current is None:
        log.warning("STRATUS_MASTER_KEY is not set: webhook endpoints can be neither made nor rotated")
    if handlers.policy().allow_private:
        log.warning(
            "webhook endpoints may target loopback and private addresses (STRATUS_WEBHOOKS_ALLOW_PRIVATE=1);"
            " link-local and cloud metadata addresses stay refused"
        )
    return {"keyring": keyring}


SERVICE = Service(
    name=c.SERVICE,
    handlers=handlers.handlers,
    dependencies=dependencies,
    mutates=(domain.mutate,),
    read_models=(read_model.READ_MODEL,),
    publisher=views.PUBLISHER,
    rebuild=c.RebuildReadModels,
    consumers=(consumers.deliveries_consumer,),
    tasks=(dispatch.dispatch,),
    clock=CLOCK,
    # One dispatcher (and consumer) at a time, or every delivery would go out once per replica.
    singleton=True,
)
