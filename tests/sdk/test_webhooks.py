"""`stratus.webhooks.verify` against real deliveries: a receiver on loopback registered as a live
endpoint (the stack allows private targets), a project event and a `webhook.test` event
delivered and verified, tampering, wrong secrets and stale timestamps refused, both signatures of
a rotation's grace period accepted, and the reference `standardwebhooks` library agreeing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

import stratus
from stratus import webhooks
from stratus_testing import wait_until

from .support import Receiver, receiver


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Receiver]:
    with receiver() as made:
        yield made


def delivered(endpoint: Receiver, event_type: str, match: str) -> tuple[bytes, dict[str, str]]:
    def find() -> tuple[bytes, dict[str, str]] | None:
        return next((d for d in endpoint.of_type(event_type) if match in d[0].decode()), None)

    return wait_until(find, timeout=60, message=f"a {event_type} delivery")


def test_a_real_delivery_verifies_and_a_forged_one_does_not(live: stratus.Client, endpoint: Receiver) -> None:
    hook = live.webhooks.create(url=endpoint.url, events=["project.created"], description="sdk verify")
    secret = hook.secret
    assert secret is not None
    try:
        project = live.projects.create(name=f"hooked-{uuid.uuid4().hex[:8]}")
        body, headers = delivered(endpoint, "project.created", project.id)

        event = webhooks.verify(body, headers, secret)
        assert isinstance(event, stratus.models.Event)
        assert event.type == "project.created" and event.data["id"] == project.id
        assert event.id == headers["webhook-id"] and event.mode == "live"
        assert Webhook(secret).verify(body, headers)["id"] == event.id  # the reference library agrees
        assert webhooks.verify(body.decode(), {k.upper(): v for k, v in headers.items()}, secret) == event

        with pytest.raises(webhooks.WebhookVerificationError, match="signature"):
            webhooks.verify(body.replace(project.id.encode(), b"prj_forged0000000000000000"), headers, secret)
        other = live.webhooks.create(url=endpoint.url, events=["project.created"])
        assert other.secret is not None
        with pytest.raises(webhooks.WebhookVerificationError, match="signature"):
            webhooks.verify(body, headers, other.secret)
        # A holder of either secret verifies (the list form, for a receiver mid-rollover).
        assert webhooks.verify(body, headers, [other.secret, secret]) == event
        live.webhooks.delete(other.id)

        sent_at = int(headers["webhook-timestamp"])
        assert webhooks.verify(body, headers, secret, now=sent_at + 299) == event
        with pytest.raises(webhooks.WebhookVerificationError, match="too old"):
            webhooks.verify(body, headers, secret, now=sent_at + 301)
        with pytest.raises(webhooks.WebhookVerificationError, match="too new"):
            webhooks.verify(body, headers, secret, now=sent_at - 301)
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            partial = {k: v for k, v in headers.items() if k.lower() != name}
            with pytest.raises(webhooks.WebhookVerificationError, match="missing"):
                webhooks.verify(body, partial, secret)
        # Malformed signatures are refused, never an exception of another kind.
        for bad in ("v1", "v1,", "v1,not base64!", "v2," + headers["webhook-signature"][3:], ",,,"):
            with pytest.raises(webhooks.WebhookVerificationError):
                webhooks.verify(body, {**headers, "webhook-signature": bad}, secret)

        deliveries = list(live.webhooks.deliveries.list(hook.id))
        assert [d.event_id for d in deliveries] == [event.id]
        wait_until(
            lambda: live.webhooks.deliveries.get(hook.id, deliveries[0].id).status == "succeeded", timeout=30
        )
    finally:
        live.webhooks.delete(hook.id)


def test_both_signatures_of_a_rotation_verify(live: stratus.Client, endpoint: Receiver) -> None:
    hook = live.webhooks.create(url=endpoint.url, events=["project.created"])
    old = hook.secret
    try:
        new = live.webhooks.rotate_secret(hook.id, grace_seconds=3600).secret
        assert old and new and old != new
        delivery = live.webhooks.test(hook.id)
        body, headers = delivered(endpoint, "webhook.test", delivery.event_id)
        assert len(headers["webhook-signature"].split()) == 2  # one per live secret
        assert webhooks.verify(body, headers, old).id == delivery.event_id
        assert webhooks.verify(body, headers, new).id == delivery.event_id
        assert Webhook(old).verify(body, headers) == Webhook(new).verify(body, headers)
    finally:
        live.webhooks.delete(hook.id)


def test_sign_makes_what_verify_and_the_reference_library_accept() -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps({"id": "evt_1", "object": "event", "type": "t.x", "created": "2026-01-01T00:00:00Z",
                       "mode": "test", "account": "acct_1", "data": {}, "actor": None}).encode()  # fmt: skip
    headers = webhooks.sign(body, secret, msg_id="evt_1")
    assert webhooks.verify(body, headers, secret).id == "evt_1"
    assert Webhook(secret).verify(body, headers)["id"] == "evt_1"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    with pytest.raises(ValueError, match="base64"):
        webhooks.verify(body, headers, "whsec_???")
