"""Webhooks service messages: webhook endpoints (where an account's events are delivered, signed)
and their public events.

An endpoint (`whk_…`) has a URL (checked against the SSRF guard), the event types it wants (or
`*`), an optional project filter, and a signing secret (`whsec_…`, Standard Webhooks) that is
shown once: when the endpoint is made and when it is rotated. A rotation keeps the previous
secret live for a grace period, during which deliveries carry both signatures. Secrets are kept
wrapped under the master key; replies never carry them (the gateway, which makes each secret,
shows it in the response that made it).
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import ClassVar, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from stratus_contracts.auth import Caller
from stratus_contracts.events import Mode, event_type
from stratus_contracts.messages import Command, Query
from stratus_contracts.reply import RebuildResult

SERVICE = "webhooks"
T = TypeVar("T")
Status = Literal["enabled", "disabled"]
URL_MAX = 2048
DESCRIPTION_MAX = 1000
MAX_EVENT_TYPES = 100
ALL_EVENTS = "*"
GRACE_DEFAULT = 86_400  # seconds the previous secret stays live after a rotation
GRACE_MAX = 7 * 86_400
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def new_secret(nbytes: int = 32) -> str:
    """A fresh signing secret, `whsec_` + standard base64 of `nbytes` random bytes. Standard, not
    URL-safe, base64: the Standard Webhooks reference libraries decode leniently and would drop
    `-` and `_`, deriving another key."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES}–{MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


class WebhooksCommand(Command[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


class WebhooksQuery(Query[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    events: list[str]  # event types, or ["*"]
    project: str | None  # only this project's events, when set
    description: str
    status: Status
    disabled_reason: str | None
    secret_hint: str  # the current secret's last four characters
    secret_rotated: datetime | None
    previous_secret_expires: datetime | None  # the rotation's grace: both secrets sign until then
    mode: Mode
    created: datetime
    updated: datetime
    version: int
    deleted: bool = False


class WebhookPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Webhook]
    has_more: bool
    next_cursor: str | None = None


class CreateWebhook(WebhooksCommand[Webhook], frozen=True, kw_only=True):
    caller: Caller
    url: str
    events: list[str]
    project: str | None = None
    description: str = ""
    secret: str  # made by the gateway, a new one on every attempt
    volatile: ClassVar[tuple[str, ...]] = ("secret",)


class UpdateWebhook(WebhooksCommand[Webhook], frozen=True, kw_only=True):
    """PATCH: None keeps `url`, `events`, `description`, `status`; `project` UNSET keeps, None clears."""

    caller: Caller
    webhook_id: str
    url: str | None = None
    events: list[str] | None = None
    project: str | UnsetType | None = UNSET
    description: str | None = None
    status: Status | None = None
    expected_version: int | None = None


class DeleteWebhook(WebhooksCommand[Webhook], frozen=True, kw_only=True):
    caller: Caller
    webhook_id: str
    expected_version: int | None = None


class RotateWebhookSecret(WebhooksCommand[Webhook], frozen=True, kw_only=True):
    caller: Caller
    webhook_id: str
    secret: str
    grace_seconds: int = GRACE_DEFAULT
    volatile: ClassVar[tuple[str, ...]] = ("secret",)


class GetWebhook(WebhooksQuery[Webhook], frozen=True, kw_only=True):
    caller: Caller
    webhook_id: str


class ListWebhooks(WebhooksQuery[WebhookPage], frozen=True, kw_only=True):
    """Newest first."""

    caller: Caller
    limit: int = 20
    cursor: str | None = None


DeliveryStatus = Literal["pending", "succeeded", "failed", "simulated"]


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    status_code: int | None  # null: no answer (refused, timed out, or a forbidden address)
    duration_ms: int
    response: str  # the first bytes of the answer's body
    error: str | None = None
    request: dict[str, str] | None = None  # test mode: the signed headers that would have gone


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # dlv_…
    object: Literal["webhook_delivery"] = "webhook_delivery"
    webhook_id: str
    event_id: str  # also the `webhook-id` header of every attempt
    event_type: str
    status: DeliveryStatus
    attempts: list[DeliveryAttempt]
    next_attempt: datetime | None
    mode: Mode
    created: datetime
    updated: datetime


class DeliveryPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[WebhookDelivery]
    has_more: bool
    next_cursor: str | None = None


class ListDeliveries(WebhooksQuery[DeliveryPage], frozen=True, kw_only=True):
    """An endpoint's deliveries, newest first."""

    caller: Caller
    webhook_id: str
    status: DeliveryStatus | None = None
    limit: int = 20
    cursor: str | None = None


class GetDelivery(WebhooksQuery[WebhookDelivery], frozen=True, kw_only=True):
    caller: Caller
    webhook_id: str
    delivery_id: str


class Redeliver(WebhooksCommand[DeliveryPage], frozen=True, kw_only=True):
    """Send again, now: one delivery, every delivery of one event, or every failed delivery made
    in `[created_gte, created_lt)`; answers the deliveries queued."""

    caller: Caller
    webhook_id: str
    delivery_id: str | None = None
    event_id: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


class WebhookTest(msgspec.Struct, frozen=True, kw_only=True):
    """`webhook.test`'s data: which endpoint asked for it."""

    webhook_id: str
    message: str = "A test event from Stratus."


class SendTestEvent(WebhooksCommand[WebhookDelivery], frozen=True, kw_only=True):
    """A `webhook.test` event delivered to this endpoint alone (it is not published)."""

    caller: Caller
    webhook_id: str


class RebuildReadModels(WebhooksCommand[RebuildResult], frozen=True, kw_only=True):
    """Drop the webhooks read models and replay them (`stratus rebuild webhooks`)."""


WEBHOOK_CREATED = event_type("webhook.created", Webhook, "A webhook endpoint was made.")
WEBHOOK_UPDATED = event_type(
    "webhook.updated", Webhook, "A webhook endpoint's URL, events, filter, description or status changed."
)
WEBHOOK_SECRET_ROTATED = event_type(
    "webhook.secret_rotated", Webhook, "A webhook endpoint's signing secret was rotated (never the secret)."
)
WEBHOOK_DISABLED = event_type(
    "webhook.disabled",
    Webhook,
    "A webhook endpoint stopped receiving: it answered 410 Gone, or failed for a whole retry window.",
)
WEBHOOK_TEST = event_type(
    "webhook.test", WebhookTest, "Sent to one endpoint by `POST /v1/webhooks/{id}/test` (never to others)."
)
WEBHOOK_DELETED = event_type("webhook.deleted", Webhook, "A webhook endpoint was deleted (its final state).")
