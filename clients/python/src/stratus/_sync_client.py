"""The sync client: transport, retries, auto-paginating lists and resumable event streams.

Generated from `_async_client.py` by `clients/python/scripts/unasync.py`: edit that file,
then run the script.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx

from stratus._common import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    STREAM_READ_TIMEOUT,
    USER_AGENT,
    Page,
    Prepared,
    RetryPolicy,
    ServerSentEvent,
    SSEDecoder,
    decode_data,
    decode_page,
    decode_value,
    prepare,
    resolve_api_key,
    resolve_base_url,
    retryable,
)
from stratus._common import sync_sleep as _sleep
from stratus._sync_resources import (
    AuditEvents,
    Deployments,
    Envs,
    Events,
    EventTypes,
    Keys,
    Members,
    Metrics,
    Projects,
    System,
    Tokens,
    Webhooks,
)
from stratus.errors import APIConnectionError, APITimeoutError, NotModified, error_from_response
from stratus.models import Event, LogLine, Me

T = TypeVar("T")

__all__ = ["Client", "EventStream", "LogStream", "Pager"]


class Client:
    """A client of the Stratus API; the sync and the async client have the same methods.

        with Client() as client:          # STRATUS_API_KEY, STRATUS_API_URL
            project = client.projects.create(name="web")
            for p in client.projects.list():
                ...

    `api_key` defaults to `STRATUS_API_KEY`, `base_url` to `STRATUS_API_URL` (else the local
    stack, http://127.0.0.1:8080). Requests that fail to connect, or answer 409
    `idempotency_key_in_use`, 429 or 5xx are retried up to `max_retries` times with exponential
    backoff and jitter (`retry_policy` tunes both), waiting at least what `Retry-After` asks;
    every write carries an `Idempotency-Key` that its retries repeat, so it is applied at most
    once. Pass `http_client` to bring your own `httpx.Client` (proxies, TLS, event hooks);
    it is then yours to close.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_policy: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.api_key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(base_url)
        self.timeout = timeout
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy(max_retries=max_retries)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=timeout)
        self._headers = {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            **(headers or {}),
        }
        self._attach_resources()

    def _attach_resources(self) -> None:
        self.projects = Projects(self)
        self.envs = Envs(self)
        self.deployments = Deployments(self)
        self.events = Events(self)
        self.event_types = EventTypes(self)
        self.webhooks = Webhooks(self)
        self.audit_events = AuditEvents(self)
        self.metrics = Metrics(self)
        self.keys = Keys(self)
        self.members = Members(self)
        self.tokens = Tokens(self)
        self.system = System(self)

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None) -> Client:
        """A client with other settings, sharing this one's connections (close this one)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._owns_http = False
        if timeout is not None:
            clone.timeout = timeout
        if max_retries is not None:
            clone.retry_policy = RetryPolicy(max_retries=max_retries)
        clone._attach_resources()
        return clone

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def me(self) -> Me:
        """The calling credential: key, account, mode, scopes, restrictions, age (`GET /v1/me`)."""
        return self._request("getMe", {}, Me)

    # -- the transport --------------------------------------------------------------

    def _request(self, operation: str, arguments: Mapping[str, Any], kind: Any) -> Any:
        """Call `operation` and return its `data` as `kind` (`str`: the body as text)."""
        response = self._send(prepare(operation, arguments))
        if response.status_code == 304:
            raise NotModified(response.headers.get("etag"), response.headers.get("x-request-id"))
        if kind is str:
            return response.text
        return decode_data(response.content, kind)

    def _page(self, prepared: Prepared, kind: Any) -> Page[Any]:
        response = self._send(prepared)
        return decode_page(response.content, kind)

    def _paginate(self, operation: str, arguments: Mapping[str, Any], kind: type[T]) -> Pager[T]:
        return Pager(self, operation, arguments, kind)

    def _stream_logs(self, operation: str, arguments: Mapping[str, Any]) -> LogStream:
        return LogStream(self, operation, arguments, None)

    def _stream_events(
        self, operation: str, arguments: Mapping[str, Any], last_event_id: str | None
    ) -> EventStream:
        return EventStream(self, operation, arguments, last_event_id)

    def _send(
        self, prepared: Prepared, *, stream: bool = False, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """Send `prepared` until it succeeds, retrying what is worth retrying; raise the last
        error otherwise. With `stream`, the successful response is returned unread."""
        timeout = httpx.Timeout(self.timeout, read=STREAM_READ_TIMEOUT) if stream else self.timeout
        retry = 0
        while True:
            request = self._http.build_request(
                prepared.method,
                self.base_url + prepared.path,
                params=prepared.params,
                headers={**self._headers, **prepared.headers, **(headers or {})},
                content=prepared.content,
                timeout=timeout,
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                retry += 1
                delay = self.retry_policy.delay(retry)
                if delay is None:
                    kind = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
                    raise kind(f"{prepared.method} {prepared.path}: {exc!r}") from exc
                _sleep(delay)
                continue
            if response.status_code < 400:
                return response
            if stream:
                try:
                    response.read()
                finally:
                    response.close()
            error = error_from_response(response)
            retry += 1
            delay = (
                self.retry_policy.delay(retry, error.retry_after)
                if retryable(error.status, error.code)
                else None
            )
            if delay is None:
                raise error
            _sleep(delay)


class Pager(Generic[T]):
    """A list that fetches its pages as it is iterated (`for item in pager`), following
    `meta.next_cursor` until `has_more` is false; `pages()` yields whole pages instead. Each
    iteration starts again from the first page (or the `cursor` it was made with)."""

    def __init__(self, client: Client, operation: str, arguments: Mapping[str, Any], kind: type[T]) -> None:
        self._client = client
        self._operation = operation
        self._arguments = {name: value for name, value in arguments.items() if name != "self"}
        self._kind = kind

    def __iter__(self) -> Iterator[T]:
        return self._items()

    def _items(self) -> Iterator[T]:
        for page in self.pages():
            for item in page.items:
                yield item

    def pages(self) -> Iterator[Page[T]]:
        cursor = self._arguments.get("cursor")
        while True:
            page = self._client._page(
                prepare(self._operation, {**self._arguments, "cursor": cursor}), self._kind
            )
            yield page
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    def first_page(self) -> Page[T]:
        """Only the first page (one request)."""
        return self._client._page(prepare(self._operation, self._arguments), self._kind)


class _Stream(Generic[T]):
    """A server-sent event stream that reconnects when the connection drops or the server
    closes it early, sending `Last-Event-ID` (the id of the last event it yielded) so that the
    server resumes right after it: nothing missed, nothing repeated. Close it (`with`, or
    `close()`) when you stop reading before it ends."""

    def __init__(
        self, client: Client, operation: str, arguments: Mapping[str, Any], last_event_id: str | None
    ) -> None:
        self._client = client
        self._operation = operation
        self._arguments = arguments
        self.last_event_id = last_event_id
        self.reconnects = 0  # how many times the stream was resumed after a drop
        self._iterator = self._run()

    def __iter__(self) -> _Stream[T]:
        return self

    def __next__(self) -> T:
        return self._iterator.__next__()

    def close(self) -> None:
        self._iterator.close()

    def __enter__(self) -> _Stream[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> None:
        """Before the first connection (an event stream finds where "now" is)."""

    def _decode(self, event: ServerSentEvent) -> T | None:
        """The item of an event, or None for one that is not an item."""
        raise NotImplementedError

    def _ends(self, event: ServerSentEvent) -> bool:
        """Whether this event ends the stream."""
        return False

    def _run(self) -> Iterator[T]:
        self._start()
        prepared = prepare(self._operation, self._arguments)
        failures = 0  # drops in a row without an event in between
        retry_delay: float | None = None  # the server's `retry:`, kept from one connection to the next
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if self.last_event_id is not None:
                headers["Last-Event-ID"] = self.last_event_id
            response = self._client._send(prepared, stream=True, headers=headers)
            # A parser per connection: what a dropped one left half-parsed (an event without its
            # closing blank line) must not be completed by the next one's first blank line.
            decoder = SSEDecoder()
            error: Exception | None = None
            try:
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is None:
                        continue
                    failures = 0
                    if self._ends(event):
                        return
                    item = self._decode(event)
                    if event.id is not None:
                        # Before the yield: once the caller has the item, a resume starts after it.
                        self.last_event_id = event.id
                    if item is not None:
                        yield item
            except httpx.TransportError as exc:  # the connection dropped mid-stream
                error = exc
            finally:
                response.close()
                retry_delay = decoder.retry if decoder.retry is not None else retry_delay
            # Dropped, or closed by the server before the end: resume after the last event.
            failures += 1
            delay = self._client.retry_policy.delay(failures, retry_delay)
            if delay is None:
                raise APIConnectionError(f"the event stream dropped {failures} times in a row") from error
            self.reconnects += 1
            _sleep(delay)


class LogStream(_Stream[LogLine]):
    """A deployment's log lines as they come (`deployments.logs`). Without `follow` it ends when
    the build has ended and every line is sent; `status` is then the deployment's status. With
    `follow`, it goes on with the running app's lines until the deployment stops serving."""

    status: str | None = None

    def _decode(self, event: ServerSentEvent) -> LogLine | None:
        return decode_value(event.data, LogLine) if event.event == "log" else None

    def _ends(self, event: ServerSentEvent) -> bool:
        if event.event != "end":
            return False
        self.status = decode_value(event.data, dict[str, Any]).get("status")
        return True


class EventStream(_Stream[Event]):
    """The account's events as they are stored (`events.stream`), from now on, or after
    `last_event_id`. It never ends by itself: close it when done."""

    def _start(self) -> None:
        if self.last_event_id is not None:
            return
        # "Now" is the newest event: resuming from it after a drop that came before any event
        # arrived still misses nothing. (An account with no event at all has no such point.)
        page = self._client._page(prepare("listEvents", {**self._arguments, "limit": 1}), Event)
        if page.items:
            self.last_event_id = page.items[0].id

    def _decode(self, event: ServerSentEvent) -> Event:
        return decode_value(event.data, Event)
