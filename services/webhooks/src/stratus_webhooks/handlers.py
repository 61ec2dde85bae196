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

from msgspec import UNSET

from stratus_contracts import webhooks as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError, FieldError
from stratus_contracts.events import catalogue
from stratus_contracts.ids import decode_id, new_uuid
from stratus_kit import Decision, Handler, State
from stratus_kit.keyring import Keyring
from stratus_webhooks import domain, read_model, ssrf, views


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

    table: dict[type, Callable] = {
        c.CreateWebhook: create_webhook,
        c.UpdateWebhook: update_webhook,
        c.RotateWebhookSecret: rotate_webhook_secret,
        c.DeleteWebhook: delete_webhook,
        c.GetWebhook: get_webhook,
        c.ListWebhooks: list_webhooks,
    }
    return table  # type: ignore[return-value]
