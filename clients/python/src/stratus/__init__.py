"""The Stratus Python SDK: sync and async clients of the Stratus platform API.

    import stratus

    client = stratus.Client()                 # STRATUS_API_KEY, STRATUS_API_URL
    project = client.projects.create(name="web")
    for p in client.projects.list():          # every page, fetched as needed
        print(p.id, p.name)

`AsyncClient` has the same methods, to be awaited (`async for` over lists and streams). Resources
are typed (`stratus.models`), errors are `stratus.errors.APIError` subclasses carrying the
problem's `code`, and `stratus.webhooks.verify` checks a delivery's signature. See README.md.
"""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from stratus import errors, models, types, webhooks
from stratus._async_client import AsyncClient, AsyncEventStream, AsyncLogStream, AsyncPager
from stratus._common import Page, RetryPolicy
from stratus._sync_client import Client, EventStream, LogStream, Pager
from stratus._version import __version__
from stratus.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    NotModified,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitError,
    ServerError,
    StratusError,
    ValidationError,
)
from stratus.webhooks import WebhookVerificationError

__all__ = [
    "UNSET",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncEventStream",
    "AsyncLogStream",
    "AsyncPager",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "EventStream",
    "LogStream",
    "NotFoundError",
    "NotModified",
    "Page",
    "Pager",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "StratusError",
    "UnsetType",
    "ValidationError",
    "WebhookVerificationError",
    "__version__",
    "errors",
    "models",
    "types",
    "webhooks",
]
