"""What the sync and async clients share, with no I/O: settings, how a method's arguments become a
request, the retry policy, the SSE parser, pages and the response decoders."""

from __future__ import annotations

import functools
import os
import platform
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import anyio
import httpx
import msgspec

from stratus._operations import OPERATIONS
from stratus._version import __version__
from stratus.errors import StratusError

T = TypeVar("T")

API_KEY_ENV = "STRATUS_API_KEY"
API_URL_ENV = "STRATUS_API_URL"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"  # what `make run` serves; set STRATUS_API_URL elsewhere
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
# A live stream is idle between events, but the gateway sends a comment every 15 s: a read that
# waits much longer than that is a dead connection, reconnected from the last event.
STREAM_READ_TIMEOUT = 60.0
USER_AGENT = f"stratus-python/{__version__} httpx/{httpx.__version__} python/{platform.python_version()}"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# POSTs that only read: retried like a GET, without an Idempotency-Key (a key would store every
# query's answer on the gateway for a day, to no purpose).
READ_POSTS = frozenset({"queryMetrics"})

async_sleep = anyio.sleep  # works under asyncio and trio, like httpx itself
sync_sleep = time.sleep


def resolve_api_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if not key:
        raise StratusError(f"no API key: pass api_key=… or set {API_KEY_ENV}")
    return key


def resolve_base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get(API_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """One request of an operation, the same bytes on every attempt (Idempotency-Key included)."""

    operation: str
    method: str
    path: str
    params: list[tuple[str, str]]
    headers: dict[str, str]
    content: bytes | None


_json = msgspec.json.Encoder()


def prepare(operation: str, arguments: Mapping[str, Any]) -> Prepared:
    """The request for `operation` from a method's arguments (its `locals()`), routed by the
    operation table: path parameters into the path, query parameters, headers, body fields.
    Arguments left `UNSET` (or `None`, for query parameters and headers) are not sent."""
    op = OPERATIONS[operation]
    args = {name: value for name, value in arguments.items() if name != "self"}
    header_args = {
        "if_match": "If-Match",
        "if_none_match": "If-None-Match",
        "idempotency_key": "Idempotency-Key",
    }
    known = {*op.path_params, *op.query, *op.body_fields}
    known |= {arg for arg, header in header_args.items() if header in op.headers}
    if op.body_param:
        known.add(op.body_param)
    unknown = set(args) - known
    if unknown:  # a method and the operation table disagree: a bug in the SDK, not in the caller
        raise TypeError(f"{operation}: arguments {sorted(unknown)} are not in the operation")

    path = op.path
    for name in op.path_params:
        path = path.replace("{" + name + "}", quote(str(args[name]), safe=""))
    params = [
        (wire, query_value(args[name]))
        for name, wire in op.query.items()
        if args.get(name) is not None and args.get(name) is not msgspec.UNSET
    ]

    headers: dict[str, str] = {}
    content: bytes | None = None
    if op.body == "json":
        body = {
            name: args[name] for name in op.body_fields if args.get(name, msgspec.UNSET) is not msgspec.UNSET
        }
        if body or op.body_required:
            content = _json.encode(body)
    elif op.body == "json_value" and op.body_param is not None:
        content = _json.encode(args[op.body_param])
    elif op.body == "text" and op.body_param is not None:
        content = str(args[op.body_param]).encode("utf-8")
    if content is not None:
        headers["Content-Type"] = "text/plain; charset=utf-8" if op.body == "text" else "application/json"

    if args.get("if_match") is not None:
        headers["If-Match"] = entity_tag(args["if_match"])
    if args.get("if_none_match") is not None:
        headers["If-None-Match"] = entity_tag(args["if_none_match"])
    if "Idempotency-Key" in op.headers and op.method in WRITE_METHODS and operation not in READ_POSTS:
        # One key per call, generated here, so that every retry of this call carries the same one.
        headers["Idempotency-Key"] = args.get("idempotency_key") or str(uuid.uuid4())
    return Prepared(operation, op.method, path, params, headers, content)


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    return str(value)


def entity_tag(version: int | str) -> str:
    """`If-Match` / `If-None-Match` for a resource's `version` (an int: `"3"`), or an entity
    tag as it is."""
    if isinstance(version, int) and not isinstance(version, bool):
        return f'"{version}"'
    return str(version)


# -- retries ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter; `Retry-After` honoured as a lower bound."""

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = 0.5
    max_delay: float = 8.0
    # A longer `Retry-After` (a spent daily budget) is not slept through: the error is raised.
    max_retry_after: float = 60.0

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number `retry` (1 for the first), or None for no retry."""
        if retry > self.max_retries:
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        backoff = min(self.max_delay, self.initial_delay * 2 ** (retry - 1))
        # "Equal jitter": at least half the backoff, so clients that failed together spread out
        # without any of them retrying at once. Not security-relevant randomness.
        wait = backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311
        if retry_after is not None:
            wait = max(wait, retry_after * random.uniform(1.0, 1.2))  # noqa: S311
        return wait


def retryable(status: int, code: str | None) -> bool:
    """Whether an error answer is worth retrying with the same request (and Idempotency-Key)."""
    if status == 409:
        return code == "idempotency_key_in_use"  # the first attempt still runs: ask again soon
    return status in (408, 429) or (status >= 500 and status != 501)


# -- server-sent events -----------------------------------------------------------------


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None


class SSEDecoder:
    """Lines of a `text/event-stream` in, events out (the WHATWG parsing rules, minus the ones a
    client of this API never meets)."""

    def __init__(self) -> None:
        self.retry: float | None = None  # the server's reconnection delay, in seconds
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:  # a blank line ends an event; one without data is no event
            event = None
            if self._data:
                event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return event
        if line.startswith(":"):  # a comment: the keep-alive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        return None


# -- responses --------------------------------------------------------------------------


class _Envelope(msgspec.Struct, Generic[T]):
    data: T


class _ListEnvelope(msgspec.Struct, Generic[T]):
    data: list[T]
    meta: dict[str, Any] = {}


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items, whether there are more, and the cursor to the next one.
    `meta` is the response's whole `meta` (a variables list adds its `config_version`)."""

    items: list[T]
    has_more: bool
    next_cursor: str | None
    request_id: str | None
    meta: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=256)
def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


def decode_data(content: bytes, kind: Any) -> Any:
    """The `data` of a success envelope, as `kind`."""
    return _decoder(_Envelope[kind]).decode(content).data


def decode_page(content: bytes, kind: Any) -> Page[Any]:
    envelope = _decoder(_ListEnvelope[kind]).decode(content)
    meta = envelope.meta
    return Page(
        items=envelope.data,
        has_more=bool(meta.get("has_more")),
        next_cursor=meta.get("next_cursor"),
        request_id=meta.get("request_id"),
        meta=meta,
    )


def decode_value(data: str, kind: Any) -> Any:
    """One SSE message's `data` (a JSON document) as `kind`."""
    return _decoder(kind).decode(data)
