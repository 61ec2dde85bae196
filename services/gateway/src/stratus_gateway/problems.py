"""RFC 9457 problem responses: every error the gateway sends is built here from a stable `code`."""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.types import Send

from stratus_bus import RemoteError, ServiceTimeout, ServiceUnavailable
from stratus_contracts.errors import CATALOGUE, FieldError, spec
from stratus_telemetry import request_id_var

log = logging.getLogger("stratus.gateway")
PROBLEM_JSON = "application/problem+json"
# The catalogue as an enum, so that the OpenAPI spec lists every stable code.
ErrorCode = Literal[tuple(CATALOGUE)]  # type: ignore[valid-type]


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, extended with `code`, `request_id` and per-field `errors`."""

    type: str
    title: str
    status: int
    detail: str
    code: ErrorCode
    request_id: str | None = None
    errors: list[FieldError] | None = None


class ApiError(Exception):
    """Raised anywhere in the gateway to answer with the problem for `code`."""

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail or spec(code).explanation
        self.errors = errors
        self.headers = headers or {}


def problem_response(
    code: str,
    detail: str | None = None,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    body = problem(code, detail, errors=errors)
    return Response(body, status_code=body.status, media_type=PROBLEM_JSON, headers=headers)


def problem(code: str, detail: str | None = None, *, errors: list[FieldError] | None = None) -> Problem:
    """The problem details for `code`, for this request."""
    s = spec(code)
    return Problem(
        type=f"/errors/{code}",
        title=s.title,
        status=s.status,
        detail=detail or s.explanation,
        code=code,
        request_id=request_id_var.get(),
        errors=errors if s.status == 422 else None,
    )


async def send_problem(send: Send, code: str, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer with the problem straight through ASGI, for the outer middleware's refusals that
    come before the app (and its exception handlers) sees the request."""
    body = problem(code, detail)
    encoded = msgspec.json.encode(body)
    start = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(encoded)).encode())]
    await send({"type": "http.response.start", "status": body.status, "headers": [*start, *headers]})
    await send({"type": "http.response.body", "body": encoded})


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def _field_errors(extra: Any) -> list[FieldError]:
    errors = []
    for item in extra if isinstance(extra, list) else []:
        message = str(item.get("message", "invalid"))
        field = str(item.get("key", ""))
        if (unknown := _UNKNOWN_FIELD.search(message)) is not None:
            field, message = unknown.group(1), "Unknown field; this field cannot be set."
        elif (missing := _MISSING_FIELD.search(message)) is not None:
            field, message = missing.group(1), "This field is required."
        elif field == "data":
            field, message = "body", "A JSON object body is required."
        elif message.startswith("'") and message.endswith("'"):
            message = "This field is required." if message.strip("'") == field else message
        errors.append(FieldError(field=field, message=message))
    return errors


def on_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Problem]:
    return problem_response(exc.code, exc.detail, errors=exc.errors, headers=exc.headers)


def on_remote_error(_: Request[Any, Any, Any], exc: RemoteError) -> Response[Problem]:
    return problem_response(exc.error.code, exc.error.message, errors=exc.error.errors)


def on_unavailable(_: Request[Any, Any, Any], exc: ServiceUnavailable) -> Response[Problem]:
    return problem_response("service_unavailable", headers={"Retry-After": "1"})


def on_timeout(_: Request[Any, Any, Any], exc: ServiceTimeout) -> Response[Problem]:
    return problem_response("service_timeout", headers={"Retry-After": "1"})


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    match exc:
        case ValidationException():
            return problem_response("validation_failed", errors=_field_errors(exc.extra))
        case NotFoundException():
            return problem_response(
                "route_not_found", f"No route matches {request.method} {request.url.path}."
            )
        case MethodNotAllowedException():
            allow = (exc.headers or {}).get("allow") or (exc.headers or {}).get("Allow") or ""
            # In the order `OPTIONS` lists them (`app.allow_every_method`).
            allow = ", ".join(sorted(m.strip() for m in allow.split(",") if m.strip()))
            return problem_response(
                "method_not_allowed",
                f"{request.method} is not allowed here; allowed: {allow}.",
                headers={"Allow": allow} if allow else None,
            )
    if exc.status_code == 413:
        return problem_response("payload_too_large")
    if type(exc) is ClientException and exc.status_code == 400:
        # Litestar raises a bare 400 ClientException when the body does not decode; bodies are JSON
        # (anything else was refused with 415 before), so this is malformed JSON.
        return problem_response("malformed_json", f"The request body is not valid JSON: {exc.detail}.")
    if exc.status_code == 415:
        return problem_response("unsupported_media_type")
    if exc.status_code < 500:
        return problem_response("bad_request", "The request could not be understood.")
    return on_internal(request, exc)


def on_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("unhandled error", exc_info=exc)
    return problem_response("internal_error")


EXCEPTION_HANDLERS = {
    ApiError: on_api_error,
    RemoteError: on_remote_error,
    ServiceUnavailable: on_unavailable,
    ServiceTimeout: on_timeout,
    HTTPException: on_http_exception,
    Exception: on_internal,
}

__all__ = ["PROBLEM_JSON", "ApiError", "MediaType", "Problem", "problem", "problem_response", "send_problem"]
