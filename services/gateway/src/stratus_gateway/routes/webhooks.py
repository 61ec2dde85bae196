"""`/v1/webhooks`: webhook endpoints — create, list, get, update, delete, rotate the secret.

The gateway makes every signing secret (`whsec_…`, Standard Webhooks) and shows it once, in the
response that made it; the webhooks service keeps it sealed under the master key, and every
other reply carries its last four characters (`secret_hint`). A replay of a create or rotation
under its Idempotency-Key says what was made, with `secret: null`. The webhooks service does not
know project teams: for a member-bound key the gateway checks the endpoint's project with
projects first, and keeps the endpoint on one project (a create or change without one would
send it every project's events).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import JSONBody, Parameter, PathParameter

from stratus_bus import Bus, replayed
from stratus_contracts import projects as p
from stratus_contracts import webhooks as c
from stratus_contracts.auth import Caller
from stratus_gateway.auth import caller
from stratus_gateway.envelope import ListMeta, Meta, meta, ok
from stratus_gateway.openapi_docs import LOCATION_HEADER, problems
from stratus_gateway.preconditions import (
    ETAG_HEADER,
    PRECONDITION_CODES,
    IfMatch,
    IfNoneMatch,
    etag,
    parse_if_match,
    unchanged,
)
from stratus_gateway.problems import ApiError
from stratus_gateway.routes.params import Cursor, Limit, aware

Req = Request[Any, Any, Any]
WebhookId = Annotated[str, PathParameter(description="The endpoint's id, `whk_…`.", max_length=64)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=c.URL_MAX, description="Where deliveries go.")]
EventList = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=100)]],
    msgspec.Meta(
        min_length=1,
        max_length=c.MAX_EVENT_TYPES,
        description='Event types (`GET /v1/event-types`), or `["*"]`.',
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=c.DESCRIPTION_MAX)]
ProjectRef = Annotated[str, msgspec.Meta(max_length=64, description="Only this project's events (`prj_…`).")]


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Url
    events: EventList
    project: ProjectRef | None = None
    description: Description = ""


class WebhookUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Url | None = None
    events: EventList | None = None
    project: ProjectRef | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | None = None
    status: c.Status | None = None


class SecretRotation(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    grace_seconds: Annotated[
        int,
        msgspec.Meta(ge=0, le=c.GRACE_MAX, description="Seconds the old secret keeps signing (both sign)."),
    ] = c.GRACE_DEFAULT


class WebhookWithSecret(c.Webhook, frozen=True, kw_only=True):
    secret: str | None  # shown in this response only (null in a replay)


class WebhookEnvelope(msgspec.Struct, kw_only=True):
    data: c.Webhook
    meta: Meta
    error: None = None


class WebhookSecretEnvelope(msgspec.Struct, kw_only=True):
    data: WebhookWithSecret
    meta: Meta
    error: None = None


class WebhookListEnvelope(msgspec.Struct, kw_only=True):
    data: list[c.Webhook]
    meta: ListMeta
    error: None = None


def _bus(request: Req) -> Bus:
    return request.app.state["bus"]


def _with_secret(view: c.Webhook, secret: str) -> WebhookWithSecret:
    # A replayed answer is an earlier attempt's, whose secret this attempt never had.
    return WebhookWithSecret(**msgspec.structs.asdict(view), secret=None if replayed() else secret)


async def _team(request: Req, who: Caller, project: str | None) -> None:
    """A member-bound key works with one project's endpoints, on a project its member may see."""
    if who.member_id is None:
        return
    if project is None:
        raise ApiError(
            "validation_failed", "A member-bound key manages one project's endpoints: give `project`."
        )
    await _bus(request).call(p.GetProject(caller=who, project_id=project))


async def _visible(request: Req, webhook_id: str) -> tuple[Caller, c.Webhook]:
    who = caller(request)
    found = await _bus(request).call(c.GetWebhook(caller=who, webhook_id=webhook_id))
    if who.member_id is not None:
        try:
            await _team(request, who, found.project)
        except Exception as exc:
            raise ApiError(
                "webhook_not_found", f"No webhook endpoint {webhook_id!r} in this account."
            ) from exc
    return who, found


async def _allowed(request: Req, webhook_id: str) -> Caller:
    """The caller, once it may act on the endpoint. The webhooks service checks the account,
    mode and project restrictions of every message itself; only a member-bound key needs its
    project checked first (with projects), which takes the endpoint."""
    who = caller(request)
    if who.member_id is not None:
        await _visible(request, webhook_id)
    return who


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post(
        "/",
        operation_id="createWebhook",
        summary="Create a webhook endpoint (its signing secret is shown only in this response)",
        status_code=201,
        response_headers=[ETAG_HEADER, LOCATION_HEADER],
        responses=problems(
            "webhook_url_forbidden", "project_not_found", "key_restricted", "insufficient_scope", body=True
        ),
    )
    async def create(self, request: Req, data: JSONBody[WebhookCreate]) -> Response[WebhookSecretEnvelope]:
        who = caller(request)
        await _team(request, who, data.project)
        if data.project is not None and who.member_id is None:
            await _bus(request).call(p.GetProject(caller=who, project_id=data.project))
        secret = c.new_secret()
        cmd = c.CreateWebhook(
            caller=who,
            url=data.url,
            events=data.events,
            project=data.project,
            description=data.description,
            secret=secret,
        )
        view = await _bus(request).call(cmd)
        return ok(
            WebhookSecretEnvelope(data=_with_secret(view, secret), meta=meta()),
            status=201,
            headers={"Location": f"/v1/webhooks/{view.id}", **etag(view.version)},
        )

    @get(
        "/",
        operation_id="listWebhooks",
        summary="List webhook endpoints (newest first; never a secret)",
        responses=problems("invalid_cursor", "validation_failed", "insufficient_scope"),
    )
    async def list_webhooks(
        self, request: Req, limit: Limit = 20, cursor: Cursor = None
    ) -> Response[WebhookListEnvelope]:
        who = caller(request)
        if who.member_id is not None:
            raise ApiError(
                "validation_failed", "A member-bound key reads endpoints one by one (its project's)."
            )
        page = await _bus(request).call(c.ListWebhooks(caller=who, limit=limit, cursor=cursor))
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(WebhookListEnvelope(data=page.data, meta=list_meta))

    @get(
        "/{webhook_id:str}",
        operation_id="getWebhook",
        summary="Get a webhook endpoint (never its secret)",
        response_headers=[ETAG_HEADER],
        responses=problems("webhook_not_found", "insufficient_scope"),
    )
    async def get_webhook(
        self, request: Req, webhook_id: WebhookId, if_none_match: IfNoneMatch = None
    ) -> Response[WebhookEnvelope]:
        _, found = await _visible(request, webhook_id)
        if (not_modified := unchanged(if_none_match, found.version)) is not None:
            return not_modified
        return ok(WebhookEnvelope(data=found, meta=meta()), headers=etag(found.version))

    @patch(
        "/{webhook_id:str}",
        operation_id="updateWebhook",
        summary="Change a webhook endpoint",
        description="Omitted fields stay; `project: null` clears the filter; `status` `disabled` stops "
        "deliveries, `enabled` resumes them.",
        response_headers=[ETAG_HEADER],
        responses=problems(
            "webhook_not_found",
            "webhook_url_forbidden",
            "key_restricted",
            "insufficient_scope",
            *PRECONDITION_CODES,
            body=True,
        ),
    )
    async def update(
        self, request: Req, webhook_id: WebhookId, data: JSONBody[WebhookUpdate], if_match: IfMatch = None
    ) -> Response[WebhookEnvelope]:
        who = await _allowed(request, webhook_id)
        if data.project is None:
            # Clearing the filter would send it every project's events: `_team` refuses it.
            await _team(request, who, None)
        elif isinstance(data.project, str):
            await _bus(request).call(p.GetProject(caller=who, project_id=data.project))
        cmd = c.UpdateWebhook(
            caller=who,
            webhook_id=webhook_id,
            url=data.url,
            events=data.events,
            project=data.project,
            description=data.description,
            status=data.status,
            expected_version=parse_if_match(if_match).version,
        )
        view = await _bus(request).call(cmd)
        return ok(WebhookEnvelope(data=view, meta=meta()), headers=etag(view.version))

    @delete(
        "/{webhook_id:str}",
        operation_id="deleteWebhook",
        summary="Delete a webhook endpoint",
        status_code=200,
        response_headers=[ETAG_HEADER],
        responses=problems("webhook_not_found", "insufficient_scope", *PRECONDITION_CODES),
    )
    async def remove(
        self, request: Req, webhook_id: WebhookId, if_match: IfMatch = None
    ) -> Response[WebhookEnvelope]:
        who = await _allowed(request, webhook_id)
        cmd = c.DeleteWebhook(
            caller=who, webhook_id=webhook_id, expected_version=parse_if_match(if_match).version
        )
        view = await _bus(request).call(cmd)
        return ok(WebhookEnvelope(data=view, meta=meta()), headers=etag(view.version))

    @post(
        "/{webhook_id:str}/rotate-secret",
        operation_id="rotateWebhookSecret",
        summary="Give a webhook endpoint a new signing secret (shown only in this response)",
        description="The old secret keeps signing, beside the new one, for `grace_seconds` (default a day).",
        status_code=200,
        response_headers=[ETAG_HEADER],
        responses=problems("webhook_not_found", "insufficient_scope", body=True),
    )
    async def rotate(
        self, request: Req, webhook_id: WebhookId, data: JSONBody[SecretRotation]
    ) -> Response[WebhookSecretEnvelope]:
        who = await _allowed(request, webhook_id)
        secret = c.new_secret()
        cmd = c.RotateWebhookSecret(
            caller=who, webhook_id=webhook_id, secret=secret, grace_seconds=data.grace_seconds
        )
        view = await _bus(request).call(cmd)
        return ok(
            WebhookSecretEnvelope(data=_with_secret(view, secret), meta=meta()), headers=etag(view.version)
        )


class RedeliverBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One of: a delivery, an event (every delivery of it), or a time range (every failed one)."""

    delivery_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    event_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    since: datetime | None = None
    until: datetime | None = None


class DeliveryEnvelope(msgspec.Struct, kw_only=True):
    data: c.WebhookDelivery
    meta: Meta
    error: None = None


class DeliveryListEnvelope(msgspec.Struct, kw_only=True):
    data: list[c.WebhookDelivery]
    meta: ListMeta
    error: None = None


DeliveryId = Annotated[str, PathParameter(description="The delivery's id, `dlv_…`.", max_length=64)]


class DeliveryController(Controller):
    path = "/webhooks/{webhook_id:str}"
    tags = ["webhooks"]

    @get(
        "/deliveries",
        operation_id="listWebhookDeliveries",
        summary="An endpoint's deliveries, newest first",
        responses=problems("webhook_not_found", "invalid_cursor", "validation_failed", "insufficient_scope"),
    )
    async def list_deliveries(
        self,
        request: Req,
        webhook_id: WebhookId,
        limit: Limit = 20,
        cursor: Cursor = None,
        status: Annotated[
            c.DeliveryStatus | None, Parameter(description="Only deliveries in this status.")
        ] = None,
    ) -> Response[DeliveryListEnvelope]:
        who = await _allowed(request, webhook_id)
        page = await _bus(request).call(
            c.ListDeliveries(caller=who, webhook_id=webhook_id, status=status, limit=limit, cursor=cursor)
        )
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(DeliveryListEnvelope(data=page.data, meta=list_meta))

    @get(
        "/deliveries/{delivery_id:str}",
        operation_id="getWebhookDelivery",
        summary="A delivery with every attempt (time, status, duration, the answer's first bytes, error)",
        responses=problems("webhook_not_found", "delivery_not_found", "insufficient_scope"),
    )
    async def get_delivery(
        self, request: Req, webhook_id: WebhookId, delivery_id: DeliveryId
    ) -> Response[DeliveryEnvelope]:
        who = await _allowed(request, webhook_id)
        found = await _bus(request).call(
            c.GetDelivery(caller=who, webhook_id=webhook_id, delivery_id=delivery_id)
        )
        return ok(DeliveryEnvelope(data=found, meta=meta()))

    @post(
        "/test",
        operation_id="testWebhook",
        summary="Send this endpoint a `webhook.test` event",
        description="Delivered like any event (signed, retried, in the delivery log), to it alone.",
        status_code=202,
        responses=problems("webhook_not_found", "insufficient_scope"),
    )
    async def send_test(self, request: Req, webhook_id: WebhookId) -> Response[DeliveryEnvelope]:
        who = await _allowed(request, webhook_id)
        made = await _bus(request).call(c.SendTestEvent(caller=who, webhook_id=webhook_id))
        return ok(DeliveryEnvelope(data=made, meta=meta()), status=202)

    @post(
        "/redeliver",
        operation_id="redeliverWebhook",
        summary="Send deliveries again now",
        description="`delivery_id` (one delivery), `event_id` (every delivery of one event), or "
        "`since`/`until` (every failed delivery made in that range: recovery after an outage). "
        "Answers the deliveries queued.",
        status_code=202,
        responses=problems(
            "webhook_not_found", "delivery_not_found", "validation_failed", "insufficient_scope"
        ),
    )
    async def redeliver(
        self, request: Req, webhook_id: WebhookId, data: JSONBody[RedeliverBody]
    ) -> Response[DeliveryListEnvelope]:
        chosen = [x is not None for x in (data.delivery_id, data.event_id)] + [
            data.since is not None or data.until is not None
        ]
        if sum(chosen) != 1:
            raise ApiError("validation_failed", "Give one of `delivery_id`, `event_id`, or `since`/`until`.")
        aware("since", data.since)
        aware("until", data.until)
        who = await _allowed(request, webhook_id)
        page = await _bus(request).call(
            c.Redeliver(
                caller=who,
                webhook_id=webhook_id,
                delivery_id=data.delivery_id,
                event_id=data.event_id,
                created_gte=data.since,
                created_lt=data.until,
            )
        )
        list_meta = ListMeta(request_id=meta().request_id, has_more=False, next_cursor=None)
        return ok(DeliveryListEnvelope(data=page.data, meta=list_meta), status=202)
