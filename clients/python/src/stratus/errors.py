"""The exceptions the SDK raises: one per HTTP status family, each carrying the problem details.

Every error response of the API is an RFC 9457 problem (`application/problem+json`) with a stable
`code`; `APIError` carries it with `status`, `title`, `detail`, `request_id` and, on a 422, the
per-field `errors`. Catch a subclass for a status (`NotFoundError`), or `APIError` and switch on
`code`. `APIConnectionError` means no answer arrived at all (after the retries).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import msgspec

from stratus.models import FieldError

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "NotFoundError",
    "NotModified",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitError",
    "ServerError",
    "StratusError",
    "ValidationError",
    "error_from_response",
    "retry_after",
]


class StratusError(Exception):
    """The base of every exception this SDK raises."""


class NotModified(StratusError):
    """304: the resource still has the version `if_none_match` named; keep your copy."""

    def __init__(self, etag: str | None, request_id: str | None) -> None:
        super().__init__(f"not modified (ETag {etag})")
        self.etag = etag
        self.request_id = request_id


class APIConnectionError(StratusError):
    """The request got no answer: the connection failed or dropped (after every retry)."""


class APITimeoutError(APIConnectionError):
    """The request got no answer in time (after every retry)."""


class APIError(StratusError):
    """The API answered with an error status; the problem's fields are attributes."""

    def __init__(
        self,
        *,
        status: int,
        code: str | None,
        title: str,
        detail: str,
        type: str | None = None,
        request_id: str | None = None,
        errors: list[FieldError] | None = None,
        headers: httpx.Headers | None = None,
        body: Any = None,
    ) -> None:
        self.status = status
        self.code = code  # None only when the answer was not a problem (e.g. a proxy's error page)
        self.title = title
        self.detail = detail
        self.type = type
        self.request_id = request_id
        self.errors = errors or []
        self.headers = headers if headers is not None else httpx.Headers()
        self.body = body
        super().__init__(str(self))

    @property
    def retry_after(self) -> float | None:
        """Seconds the `Retry-After` header asks to wait, if it says."""
        return retry_after(self.headers)

    def __str__(self) -> str:
        where = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.status} {self.code or self.title}: {self.detail}{where}"

    def __reduce__(self) -> Any:
        # Exceptions with keyword-only constructors do not pickle by default (multiprocessing,
        # task queues): rebuild from the attributes.
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[APIError], state: dict[str, Any]) -> APIError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, str(error))
    return error


class BadRequestError(APIError):
    """400: the request could not be understood (malformed JSON, a bad cursor, …)."""


class AuthenticationError(APIError):
    """401: no key, a malformed, unknown, revoked or expired key or token."""


class PermissionDeniedError(APIError):
    """403: authenticated but not allowed (a missing scope or role, an address not allowed)."""


class NotFoundError(APIError):
    """404: no such resource in this account and mode (or a route that does not exist)."""


class ConflictError(APIError):
    """409: the state forbids it (a name taken, a deployment that finished, a key in use)."""


class PreconditionFailedError(APIError):
    """412: `If-Match` named a version that is no longer current."""


class ValidationError(APIError):
    """422: the request was understood but is not valid; `errors` names the fields."""


class RateLimitError(APIError):
    """429: the key's rate limit is spent; `retry_after` says for how long."""


class ServerError(APIError):
    """5xx: a service is unavailable, late or failed; safe to retry with the same key."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: ValidationError,
    429: RateLimitError,
}


class _Problem(msgspec.Struct):
    # Every field optional: an error from something in front of the API (a proxy, a load balancer)
    # still becomes an APIError, with what it says.
    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    code: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


_problem = msgspec.json.Decoder(_Problem)


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error response whose body has been read."""
    status = response.status_code
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    body: Any = None
    problem = _Problem()
    try:
        problem = _problem.decode(response.content)
        body = msgspec.json.decode(response.content)
    except (msgspec.DecodeError, msgspec.ValidationError):
        body = response.text
    reason = response.reason_phrase or "error"
    detail = problem.detail or (body.strip()[:500] if isinstance(body, str) and body.strip() else reason)
    return cls(
        status=status,
        code=problem.code,
        title=problem.title or reason,
        detail=detail,
        type=problem.type,
        request_id=problem.request_id or response.headers.get("x-request-id"),
        errors=problem.errors,
        headers=response.headers,
        body=body,
    )


def retry_after(headers: httpx.Headers) -> float | None:
    """`Retry-After` in seconds: a number of seconds or an HTTP date; None if absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
