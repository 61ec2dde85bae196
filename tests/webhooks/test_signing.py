"""Signing: our headers verify with the Standard Webhooks reference library, as a receiver's would."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from stratus_webhooks import signing

# The Standard Webhooks specification's published test vector.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = json.dumps({"id": "evt_1", "type": "deployment.succeeded", "data": {"é": "ü"}}).encode()


def test_sign_matches_the_spec_test_vector() -> None:
    assert signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE


@pytest.mark.parametrize("nbytes", [24, 32, 64])
def test_new_secret_is_whsec_and_standard_base64_of_random_bytes(nbytes: int) -> None:
    secret = signing.new_secret(nbytes)
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == nbytes
    assert len(signing.secret_key(secret)) == nbytes
    assert signing.new_secret(nbytes) != secret


@pytest.mark.parametrize("nbytes", [0, 23, 65])
def test_new_secret_refuses_sizes_outside_the_spec(nbytes: int) -> None:
    with pytest.raises(ValueError, match="bytes"):
        signing.new_secret(nbytes)


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_" + base64.b64encode(b"x" * 23).decode(),  # too short
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # too long
        "whsec_" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # URL-safe alphabet
        "whsec_not base64!",
    ],
)
def test_secret_key_refuses_what_is_not_one_of_our_secrets(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        signing.secret_key(secret)


@pytest.mark.parametrize(
    ("msg_id", "timestamp"),
    [("evt.1", 1), ("", 1), ("evt 1", 1), ("evt_\n", 1), ("evt_1", -1), ("evt_1", True)],
)
def test_sign_refuses_ambiguous_metadata(msg_id: str, timestamp: int) -> None:
    with pytest.raises(ValueError, match=r"message id|timestamp"):
        signing.sign(VECTOR_SECRET, msg_id, timestamp, b"{}")


def test_headers_with_one_secret_verify_with_the_reference_library() -> None:
    secret = signing.new_secret()
    now = int(time.time())
    sent = signing.headers("evt_1", now, BODY, [secret])

    assert set(sent) == {"webhook-id", "webhook-timestamp", "webhook-signature", "X-Signature"}
    assert sent["webhook-id"] == "evt_1"
    assert sent["webhook-timestamp"] == str(now)
    assert sent["X-Signature"] == sent["webhook-signature"] == signing.sign(secret, "evt_1", now, BODY)
    assert Webhook(secret).verify(BODY, sent) == json.loads(BODY)


def test_during_rotation_each_secret_alone_verifies_the_dual_signed_request() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    now = int(time.time())
    sent = signing.headers("evt_2", now, BODY, [new, old])

    signatures = sent["webhook-signature"].split(" ")
    assert signatures == [signing.sign(new, "evt_2", now, BODY), signing.sign(old, "evt_2", now, BODY)]
    assert sent["X-Signature"] == sent["webhook-signature"]
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, sent) == json.loads(BODY)
        signing.verify(secret, sent, BODY)


def test_headers_sign_once_per_distinct_secret_and_need_one() -> None:
    secret = signing.new_secret()
    sent = signing.headers("evt_3", 1, b"{}", [secret, secret])
    assert sent["webhook-signature"].count("v1,") == 1
    with pytest.raises(ValueError, match="at least one"):
        signing.headers("evt_3", 1, b"{}", [])
    with pytest.raises(TypeError):
        signing.headers("evt_3", 1, b"{}", secret)


def test_reference_library_refuses_a_tampered_body() -> None:
    secret = signing.new_secret()
    sent = signing.headers("evt_4", int(time.time()), BODY, [secret])
    tampered = BODY.replace(b"succeeded", b"failed")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, sent)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(secret, sent, tampered)


def test_reference_library_refuses_a_wrong_secret() -> None:
    sent = signing.headers("evt_5", int(time.time()), BODY, [signing.new_secret(), signing.new_secret()])
    stranger = signing.new_secret()
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, sent)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(stranger, sent, BODY)


def test_reference_library_refuses_an_old_or_future_timestamp() -> None:
    secret = signing.new_secret()
    for skew in (-3600, -301, 3600):
        sent = signing.headers("evt_6", int(time.time()) + skew, BODY, [secret])
        with pytest.raises(WebhookVerificationError, match=r"too old|too new"):
            Webhook(secret).verify(BODY, sent)
        with pytest.raises(signing.InvalidSignature, match="tolerance"):
            signing.verify(secret, sent, BODY)


def test_reference_library_refuses_a_replayed_id_or_timestamp_change() -> None:
    # The id and timestamp are signed too: moving a signature onto another id or time fails.
    secret = signing.new_secret()
    now = int(time.time())
    sent = signing.headers("evt_7", now, BODY, [secret])
    for changed in ({**sent, "webhook-id": "evt_8"}, {**sent, "webhook-timestamp": str(now - 1)}):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(BODY, changed)
        with pytest.raises(signing.InvalidSignature):
            signing.verify(secret, changed, BODY)


def test_verify_accepts_the_vector_and_what_the_reference_library_signs() -> None:
    vector_headers = {
        "Webhook-Id": VECTOR_ID,
        "Webhook-Timestamp": str(VECTOR_TS),
        "Webhook-Signature": "v1a,ignored " + VECTOR_SIGNATURE,
    }
    signing.verify(VECTOR_SECRET, vector_headers, VECTOR_BODY, now=VECTOR_TS + 10)

    secret = signing.new_secret()
    now = int(time.time())
    theirs = Webhook(secret).sign("evt_9", datetime.fromtimestamp(now, tz=UTC), BODY.decode())
    signing.verify(
        secret, {"webhook-id": "evt_9", "webhook-timestamp": str(now), "webhook-signature": theirs}, BODY
    )


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"webhook-id": "evt_1", "webhook-timestamp": "1614265330"},
        {"webhook-id": "evt_1", "webhook-timestamp": "1.5e9", "webhook-signature": VECTOR_SIGNATURE},
        {"webhook-id": "evt_1", "webhook-timestamp": "1614265330", "webhook-signature": "v2,abc"},
    ],
)
def test_verify_refuses_incomplete_or_malformed_headers(broken: dict[str, str]) -> None:
    with pytest.raises(signing.InvalidSignature):
        signing.verify(VECTOR_SECRET, broken, VECTOR_BODY, now=VECTOR_TS)
