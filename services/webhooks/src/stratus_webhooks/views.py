"""What the webhooks service shows of its aggregates: the reply mapping (endpoint → `Webhook`,
never a secret, only its hint) and which domain events become which public events."""

from __future__ import annotations

from typing import Any

from stratus_contracts import webhooks as c
from stratus_contracts.events import Mode
from stratus_contracts.ids import encode_id
from stratus_kit import Publisher
from stratus_webhooks import domain


def webhook(state: domain.Endpoint, mode: Mode) -> c.Webhook:
    return c.Webhook(
        id=encode_id("whk", state.id),
        url=state.url,
        events=list(state.events),
        project=state.project,
        description=state.description,
        status=state.status,
        disabled_reason=state.disabled_reason,
        secret_hint=state.secret.hint,
        secret_rotated=state.secret_rotated,
        previous_secret_expires=state.previous_expires,
        mode=mode,
        created=state.created,
        updated=state.updated,
        version=state.version,
        deleted=state.deleted,
    )


def _data(event: Any, before: Any, after: domain.Endpoint, mode: Mode) -> tuple[Mode, str, c.Webhook]:
    return mode, after.account, webhook(after, mode)


PUBLISHER = Publisher(
    {
        domain.EndpointCreated: (c.WEBHOOK_CREATED, _data),
        domain.EndpointUpdated: (c.WEBHOOK_UPDATED, _data),
        domain.EndpointSecretRotated: (c.WEBHOOK_SECRET_ROTATED, _data),
        domain.EndpointDeleted: (c.WEBHOOK_DELETED, _data),
        domain.EndpointDisabled: (c.WEBHOOK_DISABLED, _data),
    }
)
