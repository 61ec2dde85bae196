"""`Idempotency-Key` on every `/v1` write: the first completed answer is stored and replayed.

Records live in the JetStream KV bucket `stratus_idempotency` (24 h), so every replica sees every
other's. A key is scoped to the caller's account and mode; its record holds the request's
fingerprint (method, path, query, `If-Match`, calling key id and a hash of the body).

* The KV key is the mode, then the SHA-256 of account, mode and client key (`test.<hex>`,
  `live.<hex>`: `stratus_contracts.subjects.idempotency_key`), so that the sandbox reset
  (`stratus_kit.sandbox.reset`) purges every test-mode record with one subject filter and leaves
  the live ones: after a reset a retried test-mode write runs against the empty sandbox.
* Records from before the mode prefix (the bare hex) are not looked up: they expire within 24 h
  of the upgrade. A retry across the upgrade runs again here, and the service's own record (see
  below) still applies the command at most once and answers its first reply, marked replayed;
  what that day loses is the byte-identical replay and the replay of stored 4xx answers (a failed
  command records nothing in the service, so it is decided again). A fallback would cost every
  new key a second read for a day, and could not be purged by mode, so it would replay test-mode
  answers from before a reset.

* The first request **creates** the record as "started" (KV `create` fails if the key exists, so
  of two replicas racing on one key only one proceeds), with a lease: the time its request may
  take (`STRATUS_IDEMPOTENCY_LEASE`, default twice the request timeout plus 5 s), never renewed.
* A repeat while it runs gets 409 `idempotency_key_in_use` with `Retry-After`; with another
  fingerprint 422 `idempotency_key_reused`. A started record whose lease has passed belongs to a
  gateway that died: the next request takes it over with a compare-and-set `update` on its
  revision and runs (the service applies the command at most once, so this is safe).
* When the answer is complete it replaces the record (status, `Content-Type`, `Location`,
  `ETag`, body; the record's 24 h start then) before it is sent, and repeats get it byte for
  byte with `Idempotent-Replayed: true`. 401, 403, 429 and 5xx answers are not stored: the
  record is deleted and a retry runs again. A record that is no longer this request's (another
  replica took it over, or a sandbox reset purged it) is neither replaced nor deleted, and the
  answer is sent all the same.
* Credentials are shown once: a stored body has `data.secret` / `data.token` set to null, so a
  replay of a key creation or rotation says what was created but not its secret.

The key also travels to the service on `Caller.idempotency_key`, where the command is applied at
most once (`stratus_eventstore.idempotency`): that is what makes a retry safe after a gateway
died between forwarding a command and storing its answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import msgspec
import nats
from litestar import Router
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from stratus_bus import Bus, kv_create, kv_get_written, note_replays
from stratus_bus.config import request_timeout
from stratus_contracts import subjects
from stratus_gateway.auth import authorize, remember
from stratus_gateway.problems import ApiError

log = logging.getLogger("stratus.gateway.idempotency")
BUCKET = subjects.IDEMPOTENCY_BUCKET
RETENTION = 24 * 3600
HEADER = b"idempotency-key"
REPLAYED = (b"idempotent-replayed", b"true")
MAX_KEY = 255
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STORED_HEADERS = frozenset({b"content-type", b"location", b"etag"})
NOT_STORED = frozenset({401, 403, 429})  # and every 5xx: safe to retry, so nothing to replay
CREDENTIALS = ("secret", "token")  # `data` fields shown once, never stored
IN_USE = {"Retry-After": "1"}
ATTEMPTS = 5
# JetStream's "wrong last sequence": `update` raises it as KeyWrongLastSequenceError, a
# compare-and-set `delete` as a bare API error with one of these codes.
WRONG_LAST = frozenset({10071, 10164})


def lease_seconds() -> float:
    """How long a started request may run before another replica may take its key over."""
    configured = os.environ.get("STRATUS_IDEMPOTENCY_LEASE")
    return float(configured) if configured else 2 * request_timeout() + 5


class Record(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    fingerprint: str
    started: float  # Unix time the current attempt began
    lease: float  # seconds it may run; a started record older than this is abandoned
    status: int = 0  # 0 while started
    headers: list[tuple[str, str]] = []
    body: bytes = b""


class Attempt(msgspec.Struct, frozen=True):
    """This gateway's claim on a key: the KV key, the record's revision and the record."""

    key: str
    revision: int
    record: Record


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Record).decode


def kv_key(account: str, mode: str, key: str) -> str:
    """The KV key for a client's key (KV keys allow few characters; client keys allow 95): the
    mode as a token of its own, then a digest."""
    digest = hashlib.sha256(f"{account}\x1f{mode}\x1f{key}".encode()).hexdigest()
    return subjects.idempotency_key(mode, digest)


def valid_key(values: list[bytes]) -> str:
    """The client's key, or 400: one header of 1–255 printable ASCII characters."""
    if len(values) == 1 and 1 <= len(values[0]) <= MAX_KEY and all(0x20 <= b <= 0x7E for b in values[0]):
        return values[0].decode("ascii")
    raise ApiError(
        "idempotency_key_invalid",
        f"Send one `Idempotency-Key` header of 1–{MAX_KEY} printable ASCII characters.",
    )


def fingerprint(scope: Scope, key_id: str, body: bytes) -> str:
    digest = hashlib.sha256()
    if_match = b",".join(v for k, v in scope["headers"] if k == b"if-match")
    path = scope.get("raw_path") or scope["path"].encode()
    for part in (scope["method"].encode(), path, scope["query_string"], if_match, key_id.encode()):
        digest.update(part)
        digest.update(b"\x00")
    digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()


def redacted(body: bytes) -> bytes:
    """The body to store: credentials in `data` replaced by null."""
    if not any(f'"{name}"'.encode() in body for name in CREDENTIALS):
        return body
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        return body
    for name in CREDENTIALS:
        if isinstance(data.get(name), str):
            data[name] = None
    return msgspec.json.encode(document)


def _unavailable() -> ApiError:
    return ApiError("service_unavailable", "Idempotency records are unavailable.", headers=IN_USE)


class IdempotencyStore:
    def __init__(self, kv: KeyValue, *, clock: Callable[[], float] = time.time, lease: float | None = None):
        self.kv = kv
        self.clock = clock
        self.lease = lease_seconds() if lease is None else lease

    @classmethod
    async def open(cls, bus: Bus) -> IdempotencyStore:
        kv = await bus.key_value(KeyValueConfig(bucket=BUCKET, history=1, ttl=RETENTION))
        return cls(kv)

    async def begin(self, key: str, fp: str) -> Attempt | Record:
        """Claim `key` for this request (an `Attempt`), or the completed `Record` to replay;
        raises 409 `idempotency_key_in_use` or 422 `idempotency_key_reused`."""
        mine = Record(fingerprint=fp, started=self.clock(), lease=self.lease)
        try:
            for _ in range(ATTEMPTS):
                try:
                    return Attempt(key, await kv_create(self.kv, key, _encode(mine)), mine)
                except KeyWrongLastSequenceError:
                    pass
                try:
                    entry = await kv_get_written(self.kv, key, patience=0.5)
                except KeyNotFoundError:
                    continue  # deleted (not stored) in between: try to create it again
                record = _decode(entry.value or b"")
                if record.fingerprint != fp:
                    raise ApiError("idempotency_key_reused")
                if record.status:
                    return record
                if self.clock() < record.started + record.lease:
                    raise ApiError("idempotency_key_in_use", headers=IN_USE)
                # Its gateway died mid-request: take over, unless another replica just did.
                with contextlib.suppress(KeyWrongLastSequenceError):
                    return Attempt(key, await self.kv.update(key, _encode(mine), last=entry.revision), mine)
        except (nats.errors.Error, msgspec.DecodeError, TimeoutError) as exc:
            log.warning("idempotency record unavailable: %s", exc)
            raise _unavailable() from None
        raise ApiError("idempotency_key_in_use", headers=IN_USE)

    async def finish(
        self, attempt: Attempt, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Store the answer, or delete the claim when the answer is one to retry."""
        if status in NOT_STORED or status >= 500:
            await self.abandon(attempt)
            return
        done = msgspec.structs.replace(
            attempt.record,
            status=status,
            headers=[
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k.lower() in STORED_HEADERS
            ],
            body=redacted(body),
        )
        try:
            await self.kv.update(attempt.key, _encode(done), last=attempt.revision)
        except KeyWrongLastSequenceError:
            # No longer our record: our lease ran out and another replica took the key over (its
            # answer gets stored), or a sandbox reset purged it (the next request runs afresh).
            # Either way this answer is still the client's.
            log.info("idempotency record taken over or purged before this answer was stored")
        except nats.errors.Error as exc:
            log.warning("could not store an idempotent answer: %s", exc)

    async def abandon(self, attempt: Attempt) -> None:
        # Only our own claim: a replica that took the key over keeps its record, and a record a
        # sandbox reset purged stays gone (a wrong last revision either way). Anything else is
        # retried once, then logged: a claim left behind answers the client's retries 409 until
        # its lease ends.
        for retry in (True, False):
            try:
                await self.kv.delete(attempt.key, last=attempt.revision)
                return
            except nats.errors.Error as exc:
                if isinstance(exc, KeyWrongLastSequenceError) or getattr(exc, "err_code", None) in WRONG_LAST:
                    return
                if not retry:
                    log.warning("could not free an idempotency key: %s", type(exc).__name__)


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    """The whole request body (None if the client went away); 413 over the app's limit."""
    limit = getattr(scope["app"], "request_max_body_size", None)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise ApiError("payload_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _replay(send: Send, record: Record) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record.headers]
    headers += [(b"content-length", str(len(record.body)).encode()), REPLAYED]
    await send({"type": "http.response.start", "status": record.status, "headers": headers})
    await send({"type": "http.response.body", "body": record.body, "more_body": False})


def idempotency(app: ASGIApp) -> ASGIApp:
    """Route middleware on every `/v1` write (see `attach`). It authorizes the request before
    anything else, so authentication and scope failures are never stored."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        values = [v for k, v in scope["headers"] if k == HEADER] if scope["method"] in WRITES else None
        if not values:
            await app(scope, receive, send)
            return
        authenticated = await authorize(scope)
        key = valid_key(values)
        caller = msgspec.structs.replace(authenticated.caller, idempotency_key=key)
        remember(scope, msgspec.structs.replace(authenticated, caller=caller))
        body = await _read_body(scope, receive)
        if body is None:
            return
        store: IdempotencyStore = scope["app"].state["idempotency"]
        begun = await store.begin(
            kv_key(caller.account_id, caller.mode, key), fingerprint(scope, caller.key_id, body)
        )
        if isinstance(begun, Record):
            await _replay(send, begun)
            return
        await _run(app, scope, receive, send, store, begun, body)

    return middleware


async def _run(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    store: IdempotencyStore,
    attempt: Attempt,
    body: bytes,
) -> None:
    """Run the request with its buffered body; store (or drop) the answer before sending it."""
    note = note_replays()  # a service may answer from its own record of this key
    body_sent = False
    start: Message | None = None
    chunks: list[bytes] = []
    finished = False

    async def receive_again() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    async def capture(message: Message) -> None:
        nonlocal start, finished
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        headers: list[Any] = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        if note.replayed:
            headers.append(REPLAYED)
        answer = b"".join(chunks)
        finished = True
        await store.finish(attempt, start["status"], headers, answer)
        headers.append((b"content-length", str(len(answer)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": answer, "more_body": False})

    try:
        await app(scope, receive_again, capture)
    finally:
        if not finished:
            await store.abandon(attempt)


def attach(router: Router) -> Router:
    """Give the router's write handlers this middleware, and only them: a Litestar route
    middleware costs every request of its route a layer and an exception wrapper, and reads never
    carry an `Idempotency-Key`."""
    for route in router.routes:
        for handler in getattr(route, "route_handlers", ()):
            middleware = list(handler.middleware or ())
            if WRITES & set(handler.http_methods) and idempotency not in middleware:
                handler.middleware = [*middleware, idempotency]
    return router


PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes the write safe to retry (1–255 printable ASCII characters, per account and mode, kept "
        "24 h): a repeat gets the first answer with `Idempotent-Replayed: true` (a `secret` or "
        "`token` in it is null), another request under the key is 422 `idempotency_key_reused`, a "
        "repeat while the first runs is 409 `idempotency_key_in_use`, a malformed key 400 "
        "`idempotency_key_invalid`."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
}


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare the `Idempotency-Key` header on every `/v1` write in the OpenAPI document."""
    for path, item in spec.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            if method.upper() in WRITES and isinstance(operation, dict):
                operation.setdefault("parameters", []).append(dict(PARAMETER))
    return spec


async def start(app: Any, bus: Bus) -> None:
    app.state.idempotency = await IdempotencyStore.open(bus)


__all__ = [
    "BUCKET",
    "IdempotencyStore",
    "Record",
    "attach",
    "document",
    "fingerprint",
    "idempotency",
    "kv_key",
    "start",
    "valid_key",
]
