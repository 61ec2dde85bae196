"""Webhook endpoint handlers: `(message, state, now) → (events, reply)`; the kit saves.

A caller sees an endpoint only in their own account and mode; a key restricted to projects sees
and makes only endpoints filtered to one of its projects (the gateway checked the project with
projects). URLs pass the SSRF guard (`ssrf.check_url`) when they are set; deliveries check them
again at every connect. Secrets arrive in plaintext from the gateway and are sealed here, under
the master key, before anything is recorded.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import datetime

import msgspec
from msgspec import UNSET

from stratus_contracts import webhooks as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError, FieldError
from stratus_contracts.events import Mode, catalogue
from stratus_contracts.ids import decode_id, encode_id, new_uuid
from stratus_contracts.messages import Command, Query
from stratus_kit import Decision, Handler, State
from stratus_kit.keyring import Keyring
from stratus_webhooks import domain, read_model, ssrf, views

# The seed's schedule: after the 1st, 2nd, … failure wait this long (the last repeats), until the
# window after the event closes; then the delivery is `failed`.
RETRIES = tuple(
    float(x)
    for x in os.environ.get("STRATUS_WEBHOOK_RETRIES", "60,300,1800,7200,43200").split(",")
    if x.strip()
)
WINDOW = float(os.environ.get("STRATUS_WEBHOOK_RETRY_WINDOW", str(72 * 3600)))


class ScheduleDeliveries(Command[int], frozen=True, kw_only=True):
    """Local (the consumer's): a delivery of this event to every endpoint that wants it; how
    many were made (a redelivered message makes none twice: delivery ids derive from both)."""

    mode: Mode
    account: str
    event_id: str
    event_type: str
    project: str | None
    body: bytes


class DueDeliveries(Query[list[tuple[uuid.UUID, str, str]]], frozen=True, kw_only=True):
    mode: Mode
    limit: int = 500


class NextDue(Query[str | None], frozen=True, kw_only=True):
    mode: Mode


class LoadDeliveries(Query[list[tuple[domain.Delivery, domain.Endpoint]]], frozen=True, kw_only=True):
    """The deliveries (with their endpoints) still there, in the order asked: one query for a
    worker's whole batch."""

    mode: Mode
    delivery_ids: list[uuid.UUID]


class RecordAttempt(Command[str], frozen=True, kw_only=True):
    """Local (the dispatcher's): one attempt's outcome; answers the delivery's status after it."""

    mode: Mode
    delivery_id: uuid.UUID
    attempt: domain.Attempt
    ok: bool
    simulated: bool = False
    final: bool = False
    retry_after: float | None = None
    disable: str | None = None  # the endpoint is disabled, for this reason (410 Gone)


def policy() -> ssrf.Policy:
    """`STRATUS_WEBHOOKS_ALLOW_PRIVATE=1` (the dev stack's default) allows loopback and private
    targets; link-local and metadata addresses stay refused whatever it says."""
    return ssrf.Policy(allow_private=os.environ.get("STRATUS_WEBHOOKS_ALLOW_PRIVATE", "") == "1")


def not_found(webhook_id: str) -> DomainError:
    return DomainError("webhook_not_found", f"No webhook endpoint {webhook_id!r} in this account.")


def visible(state: object, caller: Caller) -> bool:
    if not isinstance(state, domain.Endpoint) or state.deleted or state.account != caller.account_id:
        return False
    return caller.project_ids is None or state.project in caller.project_ids


def accessible(state: State, caller: Caller, webhook_id: str) -> domain.Endpoint:
    found = state.get(decode_id("whk", webhook_id))
    if not visible(found, caller):
        raise not_found(webhook_id)
    return found  # type: ignore[return-value]


def checked_url(url: str) -> str:
    try:
        ssrf.check_url(url, policy())
    except ssrf.Forbidden as exc:
        raise DomainError("webhook_url_forbidden", f"This URL cannot receive webhooks: {exc.reason}") from exc
    return url


def checked_events(events: list[str]) -> tuple[str, ...]:
    known = catalogue()
    unknown = [e for e in events if e != c.ALL_EVENTS and e not in known]
    if unknown or not events:
        errors = [
            FieldError(field="events", message=f"{e!r} is not an event type (GET /v1/event-types)")
            for e in unknown
        ]
        raise DomainError(
            "validation_failed",
            "Give event types from the catalogue, or `*` for all."
            if events
            else "Give at least one event type, or `*`.",
            errors or [FieldError(field="events", message="empty")],
        )
    return (c.ALL_EVENTS,) if c.ALL_EVENTS in events else tuple(dict.fromkeys(events))


def checked_project(caller: Caller, project: str | None) -> str | None:
    if caller.project_ids is not None and project not in caller.project_ids:
        raise DomainError(
            "key_restricted", "This key is restricted to specific projects: give one of them as `project`."
        )
    return project


def handlers(keyring: Keyring) -> dict[type, Handler]:
    def seal(endpoint_id: uuid.UUID, secret: str) -> domain.Sealed:
        kek, box = keyring.wrap(endpoint_id, secret.encode("ascii"))
        return domain.Sealed(kek=kek, box=box, hint=secret[-4:])

    def create_webhook(cmd: c.CreateWebhook, state: State, now: datetime) -> Decision:
        caller = cmd.caller
        endpoint_id = new_uuid()
        events = domain.create(
            endpoint_id,
            caller.account_id,
            checked_url(cmd.url),
            checked_events(cmd.events),
            checked_project(caller, cmd.project),
            cmd.description,
            seal(endpoint_id, cmd.secret),
            caller.actor(),
            now,
        )
        return events, views.webhook(domain.apply_all(None, events), state.name)  # type: ignore[arg-type]

    def update_webhook(cmd: c.UpdateWebhook, state: State, now: datetime) -> Decision:
        found = accessible(state, cmd.caller, cmd.webhook_id)
        project = found.project if cmd.project is UNSET else cmd.project
        events = domain.update(
            found,
            url=found.url if cmd.url is None else checked_url(cmd.url),
            events=found.events if cmd.events is None else checked_events(cmd.events),
            project=checked_project(cmd.caller, project),  # type: ignore[arg-type]
            description=found.description if cmd.description is None else cmd.description,
            status=found.status if cmd.status is None else cmd.status,
            expected_version=cmd.expected_version,
            actor=cmd.caller.actor(),
            now=now,
        )
        return events, views.webhook(domain.apply_all(found, events), state.name)  # type: ignore[arg-type]

    def rotate_webhook_secret(cmd: c.RotateWebhookSecret, state: State, now: datetime) -> Decision:
        found = accessible(state, cmd.caller, cmd.webhook_id)
        grace = max(0, min(cmd.grace_seconds, c.GRACE_MAX))
        events = domain.rotate(found, seal(found.id, cmd.secret), grace, cmd.caller.actor(), now)
        return events, views.webhook(domain.apply_all(found, events), state.name)  # type: ignore[arg-type]

    def delete_webhook(cmd: c.DeleteWebhook, state: State, now: datetime) -> Decision:
        found = accessible(state, cmd.caller, cmd.webhook_id)
        events = domain.delete(found, cmd.expected_version, cmd.caller.actor(), now)
        return events, views.webhook(domain.apply_all(found, events), state.name)  # type: ignore[arg-type]

    def get_webhook(q: c.GetWebhook, state: State, now: datetime) -> Decision:
        return [], views.webhook(accessible(state, q.caller, q.webhook_id), state.name)

    def list_webhooks(q: c.ListWebhooks, state: State, now: datetime) -> Decision:
        caller = q.caller
        ids, more, cursor = read_model.page(
            state.read_model(read_model.NAME), caller.account_id, caller.project_ids, q.limit, q.cursor
        )
        found = [state.get(i) for i in ids]
        data = [views.webhook(e, state.name) for e in found if visible(e, caller)]  # type: ignore[arg-type]
        return [], c.WebhookPage(data=data, has_more=more, next_cursor=cursor)

    def schedule_deliveries(cmd: ScheduleDeliveries, state: State, now: datetime) -> Decision:
        events: list = []
        for endpoint_id in read_model.endpoints_of(state.read_model(read_model.NAME), cmd.account):
            endpoint = state.get(endpoint_id)
            if not isinstance(endpoint, domain.Endpoint) or not domain.wants(
                endpoint, cmd.event_type, cmd.project
            ):
                continue
            if state.get(domain.delivery_id(endpoint_id, cmd.event_id)) is not None:
                continue  # made when this event came the first time
            events += domain.schedule(endpoint_id, cmd.account, cmd.event_id, cmd.event_type, cmd.body, now)
        return events, len(events)

    def due_deliveries(q: DueDeliveries, state: State, now: datetime) -> Decision:
        return [], read_model.due(state.read_model(read_model.NAME), now, q.limit)

    def next_due(q: NextDue, state: State, now: datetime) -> Decision:
        return [], read_model.next_due(state.read_model(read_model.NAME))

    def load_deliveries(q: LoadDeliveries, state: State, now: datetime) -> Decision:
        found = []
        for delivery_id in q.delivery_ids:
            delivery = state.get(delivery_id)
            if isinstance(delivery, domain.Delivery):
                endpoint = state.get(delivery.endpoint_id)
                if isinstance(endpoint, domain.Endpoint):
                    found.append((delivery, endpoint))
        return [], found

    def record_attempt(cmd: RecordAttempt, state: State, now: datetime) -> Decision:
        delivery = state.get(cmd.delivery_id)
        if not isinstance(delivery, domain.Delivery):
            return [], "gone"
        events = domain.attempted(
            delivery,
            cmd.attempt,
            ok=cmd.ok,
            simulated=cmd.simulated,
            final=cmd.final,
            retry_after=cmd.retry_after,
            retries=RETRIES,
            window=WINDOW,
            now=now,
        )
        after = domain.apply_all(delivery, events)
        endpoint = state.get(delivery.endpoint_id)
        if isinstance(endpoint, domain.Endpoint):
            if cmd.disable is not None:
                events += domain.disable(endpoint, cmd.disable, now)
            elif getattr(after, "status", None) == "failed" and not cmd.final:
                # Failed for the whole window: the receiver is gone; stop sending to it.
                events += domain.disable(endpoint, "Every attempt failed for the whole retry window.", now)
        return events, after.status  # type: ignore[union-attr]

    def delivery_view(delivery: domain.Delivery, mode: str) -> c.WebhookDelivery:
        return c.WebhookDelivery(
            id=encode_id("dlv", delivery.id),
            webhook_id=encode_id("whk", delivery.endpoint_id),
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=delivery.status,
            attempts=[c.DeliveryAttempt(**msgspec.structs.asdict(a)) for a in delivery.attempts],
            next_attempt=delivery.next_attempt,
            mode=mode,  # type: ignore[arg-type]
            created=delivery.created,
            updated=delivery.updated,
        )

    def list_deliveries(q: c.ListDeliveries, state: State, now: datetime) -> Decision:
        accessible(state, q.caller, q.webhook_id)
        ids, more, cursor = read_model.deliveries(
            state.read_model(read_model.NAME), q.webhook_id, status=q.status, limit=q.limit, cursor=q.cursor
        )
        data = [delivery_view(state.get(i), state.name) for i in ids]
        return [], c.DeliveryPage(data=data, has_more=more, next_cursor=cursor)

    def get_delivery(q: c.GetDelivery, state: State, now: datetime) -> Decision:
        endpoint = accessible(state, q.caller, q.webhook_id)
        delivery = state.get(decode_id("dlv", q.delivery_id))
        if not isinstance(delivery, domain.Delivery) or delivery.endpoint_id != endpoint.id:
            raise DomainError("delivery_not_found", f"No delivery {q.delivery_id!r} of this endpoint.")
        return [], delivery_view(delivery, state.name)

    def send_test_event(cmd: c.SendTestEvent, state: State, now: datetime) -> Decision:
        endpoint = accessible(state, cmd.caller, cmd.webhook_id)
        event_id = encode_id("evt", new_uuid())
        event = c.WEBHOOK_TEST.event(
            id=event_id,
            created=now,
            mode=state.name,  # type: ignore[arg-type]
            account=endpoint.account,
            data=c.WebhookTest(webhook_id=cmd.webhook_id),
            actor=cmd.caller.actor(),
        )
        events = domain.schedule(
            endpoint.id, endpoint.account, event_id, event.type, msgspec.json.encode(event), now
        )
        return events, delivery_view(domain.apply_all(None, events), state.name)  # type: ignore[arg-type]

    def redeliver(cmd: c.Redeliver, state: State, now: datetime) -> Decision:
        endpoint = accessible(state, cmd.caller, cmd.webhook_id)
        model = state.read_model(read_model.NAME)
        if cmd.delivery_id is not None:
            found = state.get(decode_id("dlv", cmd.delivery_id))
            if not isinstance(found, domain.Delivery) or found.endpoint_id != endpoint.id:
                raise DomainError("delivery_not_found", f"No delivery {cmd.delivery_id!r} of this endpoint.")
            chosen = [found]
        elif cmd.event_id is not None:
            ids, _, _ = read_model.deliveries(model, cmd.webhook_id, event_id=cmd.event_id, limit=100)
            chosen = [state.get(i) for i in ids]
        else:
            ids, _, _ = read_model.deliveries(
                model,
                cmd.webhook_id,
                status="failed",
                created_gte=cmd.created_gte,
                created_lt=cmd.created_lt,
                limit=1000,
            )
            chosen = [state.get(i) for i in ids]
        events: list = []
        for delivery in chosen:
            events += domain.requeue(delivery, now)
        requeued = {e.originator_id for e in events}
        data = [
            delivery_view(domain.apply_all(d, [e for e in events if e.originator_id == d.id]), state.name)
            for d in chosen
            if d.id in requeued
        ]
        return events, c.DeliveryPage(data=data, has_more=False)

    table: dict[type, Callable] = {
        ScheduleDeliveries: schedule_deliveries,
        DueDeliveries: due_deliveries,
        NextDue: next_due,
        LoadDeliveries: load_deliveries,
        RecordAttempt: record_attempt,
        c.ListDeliveries: list_deliveries,
        c.GetDelivery: get_delivery,
        c.Redeliver: redeliver,
        c.SendTestEvent: send_test_event,
        c.CreateWebhook: create_webhook,
        c.UpdateWebhook: update_webhook,
        c.RotateWebhookSecret: rotate_webhook_secret,
        c.DeleteWebhook: delete_webhook,
        c.GetWebhook: get_webhook,
        c.ListWebhooks: list_webhooks,
    }
    return table  # type: ignore[return-value]
