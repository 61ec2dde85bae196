"""Outermost ASGI middleware: request id, the request's server span and one JSON log line.

It wraps every response (errors and unknown routes included), so `X-Request-Id` is always set.
"""

from __future__ import annotations

import logging
import re
import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from stratus_contracts.ids import new_request_id
from stratus_telemetry import request_id_var

log = logging.getLogger("stratus.gateway.access")
_tracer = trace.get_tracer("stratus.gateway")
WARNING_STATE = "stratus.warning"  # set by auth for old keys
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_ID.match(text) else None
    return None


def request_context(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        method, path = scope["method"], scope["path"]

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                if warning := scope["state"].get(WARNING_STATE) if "state" in scope else None:
                    headers.append((b"warning", warning.encode()))
                message["headers"] = headers
            await send(message)

        # start_span + attach rather than start_as_current_span: the same span and context,
        # without three layers of context managers on every request.
        span = _tracer.start_span(f"{method} {path}", kind=SpanKind.SERVER)
        context_token = otel_context.attach(trace.set_span_in_context(span))
        # Attributes only on recorded spans: building them for a span nobody exports is waste.
        recording = span.is_recording()
        if recording:
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", path)
            span.set_attribute("stratus.request_id", request_id)
        try:
            await app(scope, receive, send_wrapper)
        finally:
            if recording:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            otel_context.detach(context_token)
            span.end()
            request_id_var.reset(token)

    return middleware
