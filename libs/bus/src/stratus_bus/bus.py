"""Request/reply over NATS with msgspec-typed payloads, typed error replies and W3C trace context.

Requests and replies are MessagePack. A reply is `Reply[T]`: either a result or an `ErrorReply`
whose `code` comes from the contracts' catalogue. Endpoints subscribe in a queue group, so N
replicas of a service share the work.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import StreamConfig
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from stratus_bus.config import request_timeout
from stratus_contracts import subjects
from stratus_contracts.errors import DomainError, ErrorReply
from stratus_contracts.reply import Reply
from stratus_telemetry import request_id_var

log = logging.getLogger("stratus.bus")
_tracer = trace.get_tracer("stratus.bus")
REQUEST_ID_HEADER = "Stratus-Request-Id"

T = TypeVar("T")
R = TypeVar("R")

_encoder = msgspec.msgpack.Encoder()


@functools.cache
def _decoder(tp: Any) -> msgspec.msgpack.Decoder[Any]:
    return msgspec.msgpack.Decoder(tp)


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


class Bus:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self._reconnect_callbacks: list[Callable[[], None]] = []

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
            url,
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

    async def ensure_events_stream(self) -> None:
        """Create the EVENTS stream if missing. Duplicates are dropped within a one-day window."""
        config = StreamConfig(
            name=subjects.EVENTS_STREAM,
            subjects=[subjects.EVENTS_SUBJECTS],
            duplicate_window=24 * 3600.0,
        )
        try:
            await self.js.stream_info(subjects.EVENTS_STREAM)
        except nats.js.errors.NotFoundError:
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                # Another process created it in between; that is what we wanted.
                await self.js.stream_info(subjects.EVENTS_STREAM)

    async def request(
        self,
        subject: str,
        message: msgspec.Struct,
        result_type: type[T],
        *,
        timeout: float | None = None,
    ) -> T:
        """Send a typed request and return the typed result.

        Raises RemoteError (typed error reply), ServiceTimeout or ServiceUnavailable.
        """
        headers: dict[str, str] = {}
        with _tracer.start_as_current_span(f"send {subject}", kind=SpanKind.CLIENT) as span:
            span.set_attribute("messaging.system", "nats")
            span.set_attribute("messaging.destination.name", subject)
            propagate.inject(headers)
            request_id = request_id_var.get()
            if request_id:
                headers[REQUEST_ID_HEADER] = request_id
            try:
                msg = await self.nc.request(
                    subject,
                    _encoder.encode(message),
                    timeout=timeout or request_timeout(),
                    headers=headers,
                )
            except NoRespondersError as exc:
                span.set_status(Status(StatusCode.ERROR, "no responders"))
                raise ServiceUnavailable(subject) from exc
            except NatsTimeout as exc:
                span.set_status(Status(StatusCode.ERROR, "timeout"))
                raise ServiceTimeout(subject) from exc
            reply = _decoder(Reply[result_type]).decode(msg.data)
            if reply.error is not None:
                span.set_attribute("stratus.error_code", reply.error.code)
                raise RemoteError(reply.error)
            if reply.replayed and (note := _replay_note.get()) is not None:
                note.replayed = True
            return reply.result  # type: ignore[return-value]

    async def serve(
        self,
        subject: str,
        request_type: type[R],
        handler: Callable[[R], Awaitable[Any]],
        *,
        queue: str,
    ) -> Subscription:
        """Answer requests on `subject` in queue group `queue` with `handler`'s typed result."""
        decoder = _decoder(request_type)

        async def on_message(msg: Msg) -> None:
            headers = msg.headers or {}
            token = request_id_var.set(headers.get(REQUEST_ID_HEADER))
            ctx = propagate.extract(headers)
            with _tracer.start_as_current_span(
                f"handle {subject}", context=ctx, kind=SpanKind.SERVER
            ) as span:
                span.set_attribute("messaging.system", "nats")
                span.set_attribute("messaging.destination.name", subject)
                try:
                    request = decoder.decode(msg.data)
                    result = await handler(request)
                    if isinstance(result, Replayed):
                        reply: Reply[Any] = Reply(result=result.result, replayed=True)
                    else:
                        reply = Reply(result=result)
                except DomainError as exc:
                    span.set_attribute("stratus.error_code", exc.reply.code)
                    reply = Reply(error=exc.reply)
                except msgspec.ValidationError as exc:
                    reply = Reply(error=ErrorReply(code="bad_request", message=str(exc)))
                except Exception:
                    # The caller gets a typed 500; the details stay in our logs, never in the reply.
                    log.exception("handler failed", extra={"subject": subject})
                    span.set_status(Status(StatusCode.ERROR))
                    reply = Reply(error=ErrorReply(code="internal_error", message="internal error"))
                finally:
                    request_id_var.reset(token)
                if msg.reply:
                    await msg.respond(_encoder.encode(reply))

        return await self.nc.subscribe(subject, queue=queue, cb=on_message)

    async def drain(self, timeout: float = 10.0) -> None:
        """Finish in-flight messages, then close. Bounded: with NATS gone, drain would wait forever."""
        if self.nc.is_closed:
            return
        try:
            await asyncio.wait_for(self.nc.drain(), timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("drain did not finish (%s); closing", type(exc).__name__)
            await self.nc.close()
