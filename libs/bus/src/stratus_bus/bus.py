"""Request/reply over NATS with msgspec-typed messages, typed error replies and W3C trace context.

A request is a contract message (`stratus_contracts.messages`): `await bus.call(CreateProject(…))`
sends it on `CreateProject.subject` and returns a `CreateProject.returns`. On the wire a request
is one MessagePack array `[request_id, traceparent, message]` (an `Envelope`) and a reply is a
`Reply[T]`: a result or an `ErrorReply` whose `code` comes from the contracts' catalogue. The
request id and trace context travel in the payload rather than in NATS headers, which nats-py
parses in Python at a cost comparable to the rest of a round trip (docs/performance.md).

Services receive with `serve`: the callback gets the decoded envelope and the reply subject and
must not block (the service kit queues the work and answers later with `respond`), so one
subscription keeps many requests in flight instead of handling them one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from stratus_bus.config import request_timeout, stream_replicas
from stratus_contracts import metrics, subjects
from stratus_contracts.errors import DomainError, ErrorReply
from stratus_contracts.messages import Message
from stratus_contracts.reply import Reply
from stratus_telemetry import TRACING, request_id_var

log = logging.getLogger("stratus.bus")

# What JetStream answers while its cluster has no meta leader (a node just died and the others
# are electing one, seconds at most): no answer, nobody answering yet, or a 503.
SETTLING = (NatsTimeout, NoRespondersError, nats.js.errors.ServiceUnavailableError)
SETTLE_PATIENCE = 60.0  # seconds a start-up waits for JetStream before it gives up
_tracer = trace.get_tracer("stratus.bus")

T = TypeVar("T")
B = TypeVar("B")

_encoder = msgspec.msgpack.Encoder()


class Envelope(msgspec.Struct, Generic[B], frozen=True, array_like=True):
    """What travels as a request: the message with the request id and trace context it runs in."""

    request_id: str | None
    traceparent: str | None
    body: B


@functools.cache
def _reply_decoder(result_type: Any) -> msgspec.msgpack.Decoder[Any]:
    return msgspec.msgpack.Decoder(Reply[result_type])


@functools.cache
def envelope_decoder(body_type: Any) -> msgspec.msgpack.Decoder[Any]:
    return msgspec.msgpack.Decoder(Envelope[body_type])


def encode_reply(reply: Reply[Any]) -> bytes:
    return _encoder.encode(reply)


class _PubAck(msgspec.Struct):
    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


_pub_ack = msgspec.json.Decoder(_PubAck)


class RemoteError(Exception):
    """A service answered with a typed error."""

    def __init__(self, error: ErrorReply) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


class ServiceUnavailable(Exception):
    """Nobody subscribes to the subject: the service is down."""


class ServiceTimeout(Exception):
    """The service did not answer in time."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """A handler's result that is its stored reply to an earlier, identical command (one sent with
    the same Idempotency-Key): sent as `Reply(result=..., replayed=True)`. `result` may be the
    result or `msgspec.Raw` of its MessagePack encoding."""

    result: Any


class ReplayNote:
    """Whether any reply received in a context was a replay; see `note_replays`."""

    replayed = False


_replay_note: contextvars.ContextVar[ReplayNote | None] = contextvars.ContextVar(
    "stratus_replay_note", default=None
)


def note_replays() -> ReplayNote:
    """From now on in this context (one HTTP request in the gateway), note replayed replies."""
    note = ReplayNote()
    _replay_note.set(note)
    return note


def replayed() -> bool:
    """Whether a reply received in this context since `note_replays()` was a replay."""
    note = _replay_note.get()
    return note is not None and note.replayed


def traceparent() -> str | None:
    """The current span's W3C traceparent, or None when nothing records spans."""
    if not TRACING.recording:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def reply_to(result: Any) -> Reply[Any]:
    if isinstance(result, Replayed):
        return Reply(result=result.result, replayed=True)
    return Reply(result=result)


def error_reply(exc: BaseException, subject: str) -> Reply[Any]:
    """The reply for a handler that raised: its typed error, or a bare `internal_error` (the
    details stay in this process's log, never in the reply)."""
    if isinstance(exc, DomainError):
        return Reply(error=exc.reply)
    if isinstance(exc, msgspec.ValidationError):
        return Reply(error=ErrorReply(code="bad_request", message=str(exc)))
    log.error("handler failed", exc_info=exc, extra={"subject": subject})
    return Reply(error=ErrorReply(code="internal_error", message="internal error"))


class _Replies:
    """Our own reply inbox: one wildcard subscription, a future per request by a counter token.

    nats-py's `request` makes a random token (NUID plus `os.urandom`) and a done-callback per
    call and waits with `asyncio.wait_for`; a counter and one timer handle do the same job for a
    fraction of the gateway's CPU per request (docs/performance.md)."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.prefix = ""
        self.pending: dict[str, asyncio.Future[Msg]] = {}
        self._tokens = itertools.count(1)
        self._started: asyncio.Future[None] | None = None

    async def ready(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                self.prefix = self.nc.new_inbox() + "."
                await self.nc.subscribe(self.prefix + "*", cb=self._on_reply)
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started = None
                raise
            self._started.set_result(None)
        await self._started

    async def _on_reply(self, msg: Msg) -> None:
        future = self.pending.pop(msg.subject[len(self.prefix) :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    def _expire(self, token: str) -> None:
        future = self.pending.pop(token, None)
        if future is not None and not future.done():
            future.set_exception(NatsTimeout())

    async def request(
        self, subject: str, payload: bytes, timeout: float, headers: dict[str, str] | None = None
    ) -> Msg:
        if not self._started or not self._started.done():
            await self.ready()
        loop = asyncio.get_running_loop()
        token = str(next(self._tokens))
        future: asyncio.Future[Msg] = loop.create_future()
        self.pending[token] = future
        timer = loop.call_later(timeout, self._expire, token)
        try:
            await self.nc.publish(subject, payload, reply=self.prefix + token, headers=headers)
            msg = await future
        finally:
            timer.cancel()
            self.pending.pop(token, None)
        if msg.headers and msg.headers.get("Status") == "503":
            raise NoRespondersError
        return msg


def servers(url: str) -> list[str]:
    """`NATS_URL` may name several servers of a cluster, comma-separated: the client starts
    with any that answers (and learns the rest from the cluster)."""
    return [u.strip() for u in url.split(",") if u.strip()]


async def kv_create(kv: KeyValue, key: str, value: bytes) -> int:
    """`kv.create` (only if absent), raising KeyWrongLastSequenceError for a key that exists
    however the server said so. On a replicated bucket a create that loses a race can be refused
    before the winner's write is readable; nats-py then re-reads the key (to tell a deleted key
    from a live one), finds nothing and raises KeyNotFoundError: the key exists, it is only not
    visible yet. Callers that read it next should use `kv_get_written`."""
    try:
        return await kv.create(key, value)
    except KeyNotFoundError:
        raise KeyWrongLastSequenceError("the key exists (not readable yet)") from None


async def kv_get_written(kv: KeyValue, key: str, patience: float = 2.0) -> KeyValue.Entry:
    """`kv.get` of a key that a create just found taken: waits out a replica that has not yet
    applied the winning write, then raises KeyNotFoundError (it was deleted in between)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    pause = 0.005
    while True:
        try:
            return await kv.get(key)
        except KeyNotFoundError:
            if loop.time() + pause > deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)


class Bus:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._timeout = request_timeout()
        self._answering: set[asyncio.Task[None]] = set()  # held, so they are not collected early
        self._replies = _Replies(nc)

    @classmethod
    async def connect(cls, url: str, name: str) -> Bus:
        bus: Bus | None = None

        async def on_error(exc: Exception) -> None:
            log.warning("nats error: %s", exc)

        async def on_reconnect() -> None:
            log.info("nats reconnected")
            for callback in bus._reconnect_callbacks if bus else ():
                callback()

        nc = await nats.connect(
            servers(url),
            name=name,
            error_cb=on_error,
            reconnected_cb=on_reconnect,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )
        bus = cls(nc)
        return bus

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every reconnect (anything learned from the bus may be stale)."""
        self._reconnect_callbacks.append(callback)

    async def settled(self, call: Callable[[], Awaitable[T]], *, patience: float = SETTLE_PATIENCE) -> T:
        """Run a JetStream management call (`call` must be safe to repeat), waiting out a cluster
        that is electing its leader. A process that starts then (a replica restarted beside the
        node that died) would otherwise crash, and a gateway would reset the connections the
        kernel had already queued for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        pause = 0.1
        while True:
            try:
                return await call()
            except SETTLING as exc:
                if loop.time() + pause > deadline:
                    raise
                log.warning("jetstream not ready (%s); trying again in %.1fs", type(exc).__name__, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def key_value(self, config: KeyValueConfig) -> KeyValue:
        """Open a KV bucket, creating it (replicated as the streams are) when missing."""
        replicated = dataclasses.replace(config, replicas=stream_replicas())
        return await self.settled(lambda: self.js.create_key_value(replicated))

    async def ensure_events_stream(self) -> None:
        """Create the EVENTS stream if missing. Duplicates are dropped within a one-day window."""
        config = StreamConfig(
            name=subjects.EVENTS_STREAM,
            subjects=[subjects.EVENTS_SUBJECTS],
            duplicate_window=24 * 3600.0,
            num_replicas=stream_replicas(),
        )

        async def ensure() -> None:
            try:
                await self.js.stream_info(subjects.EVENTS_STREAM)
            except nats.js.errors.NotFoundError:
                try:
                    await self.js.add_stream(config)
                except nats.js.errors.BadRequestError:
                    # Another process created it in between; that is what we wanted.
                    await self.js.stream_info(subjects.EVENTS_STREAM)

        await self.settled(ensure)

    async def ensure_telemetry_stream(self) -> None:
        """The `TELEMETRY` stream (request records and custom events, for the metrics service):
        a buffer bounded in age and bytes, not a store; a batch re-published within two minutes
        (same `Nats-Msg-Id`) is dropped."""
        await self.ensure_stream(
            StreamConfig(
                name=metrics.TELEMETRY_STREAM,
                subjects=[metrics.TELEMETRY_SUBJECTS],
                max_age=metrics.STREAM_MAX_AGE,
                max_bytes=metrics.STREAM_MAX_BYTES,
                duplicate_window=120.0,
                num_replicas=stream_replicas(),
            )
        )

    async def ensure_stream(self, config: StreamConfig) -> None:
        """Create a stream, or bring an existing one's subjects and limits to `config`: whichever
        process publishes or consumes first makes it (the telemetry stream)."""

        async def ensure() -> None:
            try:
                info = await self.js.stream_info(config.name)
            except nats.js.errors.NotFoundError:
                try:
                    await self.js.add_stream(config)
                    return
                except nats.js.errors.BadRequestError:
                    info = await self.js.stream_info(config.name)  # another made it in between
            current = info.config
            if (current.subjects, current.max_age, current.max_bytes) != (
                config.subjects,
                config.max_age,
                config.max_bytes,
            ):
                await self.js.update_stream(config)

        await self.settled(ensure)

    async def call(
        self,
        message: Message[T],
        *,
        timeout: float | None = None,
        subject: str | None = None,
        returns: type[Any] | None = None,
    ) -> T:
        """Send a command or query to its service and return its typed result.

        `subject` and `returns` default to the message type's own (only messages every service
        answers, such as `Ping`, pass them). Raises RemoteError (a typed error reply),
        ServiceTimeout or ServiceUnavailable.
        """
        subject = subject or type(message).subject
        result_type = returns or type(message).returns
        if TRACING.recording:
            with _tracer.start_as_current_span(f"send {subject}", kind=SpanKind.CLIENT) as span:
                span.set_attribute("messaging.system", "nats")
                span.set_attribute("messaging.destination.name", subject)
                try:
                    return await self._call(subject, message, result_type, timeout, traceparent())
                except RemoteError as exc:
                    span.set_attribute("stratus.error_code", exc.error.code)
                    raise
                except (ServiceUnavailable, ServiceTimeout) as exc:
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    raise
        return await self._call(subject, message, result_type, timeout, None)

    async def _call(
        self, subject: str, message: Any, result_type: Any, timeout: float | None, parent: str | None
    ) -> Any:
        payload = _encoder.encode(Envelope(request_id_var.get(), parent, message))
        try:
            msg = await self._replies.request(subject, payload, timeout or self._timeout)
        except NoRespondersError as exc:
            raise ServiceUnavailable(subject) from exc
        except NatsTimeout as exc:
            raise ServiceTimeout(subject) from exc
        reply = _reply_decoder(result_type).decode(msg.data)
        if reply.error is not None:
            raise RemoteError(reply.error)
        if reply.replayed and (note := _replay_note.get()) is not None:
            note.replayed = True
        return reply.result

    async def publish_durably(self, subject: str, payload: bytes, msg_id: str, timeout: float = 5.0) -> int:
        """Publish to JetStream with `Nats-Msg-Id` (a re-publish within the stream's duplicate
        window is dropped) and wait for the stream to store it; its stream sequence. The same
        protocol as `js.publish`, on the bus's lighter request path (docs/performance.md)."""
        try:
            msg = await self._replies.request(subject, payload, timeout, headers={"Nats-Msg-Id": msg_id})
        except NoRespondersError as exc:
            raise nats.js.errors.NoStreamResponseError from exc
        except NatsTimeout as exc:
            raise ServiceTimeout(subject) from exc
        ack = _pub_ack.decode(msg.data)
        if ack.error is not None:
            raise nats.js.errors.APIError(description=str(ack.error))
        return ack.seq

    async def serve(
        self,
        subject: str,
        body_type: type[B],
        on_request: Callable[[Envelope[B], str], None],
        *,
        queue: str,
    ) -> Subscription:
        """Deliver requests on `subject` (queue group `queue`) to `on_request(envelope,
        reply_subject)`, which must return at once; answer with `respond`. A payload that does
        not decode is answered `bad_request` here."""
        decoder = envelope_decoder(body_type)

        async def on_message(msg: Msg) -> None:
            try:
                envelope = decoder.decode(msg.data)
            except msgspec.DecodeError as exc:
                if msg.reply:
                    await self.respond(
                        msg.reply, Reply(error=ErrorReply(code="bad_request", message=str(exc)))
                    )
                return
            on_request(envelope, msg.reply)

        return await self.nc.subscribe(subject, queue=queue, cb=on_message)

    async def respond(self, reply_subject: str, reply: Reply[Any]) -> None:
        if reply_subject:
            await self.nc.publish(reply_subject, _encoder.encode(reply))

    async def serve_simple(
        self,
        subject: str,
        body_type: type[B],
        handler: Callable[[B], Awaitable[Any]],
        *,
        queue: str,
    ) -> Subscription:
        """Answer requests with an async `handler`, one at a time (for cheap answers on the event
        loop, such as a ping)."""

        def on_request(envelope: Envelope[B], reply_subject: str) -> None:
            task = asyncio.get_running_loop().create_task(
                self._answer(subject, handler, envelope, reply_subject)
            )
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

        return await self.serve(subject, body_type, on_request, queue=queue)

    async def _answer(
        self,
        subject: str,
        handler: Callable[[Any], Awaitable[Any]],
        envelope: Envelope[Any],
        reply_subject: str,
    ) -> None:
        token = request_id_var.set(envelope.request_id)
        try:
            reply = reply_to(await handler(envelope.body))
        except Exception as exc:
            reply = error_reply(exc, subject)
        finally:
            request_id_var.reset(token)
        await self.respond(reply_subject, reply)

    async def drain(self, timeout: float = 10.0) -> None:
        """Finish in-flight messages, then close. Bounded: with NATS gone, drain would wait forever."""
        if self.nc.is_closed:
            return
        try:
            await asyncio.wait_for(self.nc.drain(), timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("drain did not finish (%s); closing", type(exc).__name__)
            # With the server gone the transport may already be closed under the client, and
            # closing raises from it; the connection is over either way.
            with contextlib.suppress(Exception):
                await self.nc.close()
