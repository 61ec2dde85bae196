"""`/v1/events`: the account's event feed (every public event of its mode), as pages or live.

The audit service keeps the history of the `EVENTS` stream and answers both. With `Accept:
text/event-stream`, `GET /v1/events` streams events as they are stored: one SSE message per
event, its `id` the event's id (`evt_…`), so a client that reconnects with `Last-Event-ID`
resumes right after the last event it saw. Without it, the stream starts at the newest event
(only what comes next is sent). The audit service signals each stored batch on a core NATS
subject per account and mode; the signal carries nothing, so every event reaches a follower
through the service's tenant checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter, PathParameter, QueryParameter
from litestar.response import Stream

from stratus_bus import Bus
from stratus_contracts import audit as c
from stratus_contracts import projects as p
from stratus_contracts.auth import Caller
from stratus_contracts.events import Event
from stratus_gateway import sse
from stratus_gateway.auth import caller
from stratus_gateway.envelope import ListMeta, Meta, meta, ok
from stratus_gateway.openapi_docs import SSE_DOC, problems
from stratus_gateway.problems import ApiError
from stratus_gateway.routes.params import Cursor, Limit, aware

Req = Request[Any, Any, Any]
EventId = Annotated[str, PathParameter(description="The event's id, `evt_…`.", max_length=64)]
_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.?\*?$"
_json = msgspec.json.Encoder()


class EventEnvelope(msgspec.Struct, kw_only=True):
    data: Event[dict[str, Any]]
    meta: Meta
    error: None = None


class EventListEnvelope(msgspec.Struct, kw_only=True):
    data: list[Event[dict[str, Any]]]
    meta: ListMeta
    error: None = None


def _bus(request: Req) -> Bus:
    return request.app.state["bus"]


async def _team_check(request: Req, who: Caller, project: str | None) -> None:
    """A member-bound key reads one project's events, a project its member may see."""
    if who.member_id is None:
        return
    if project is None:
        raise ApiError("validation_failed", "A member-bound key reads one project's events: add `project`.")
    await _bus(request).call(p.GetProject(caller=who, project_id=project))


class EventController(Controller):
    path = "/events"
    tags = ["events"]

    @get(
        "/",
        operation_id="listEvents",
        summary="List events, or follow them live",
        description="Every public event of this account and mode, newest first (`type` exact or a prefix "
        "ending in `.` or `*`; `project`; `created[gte]`, `created[lt]`). With `Accept: text/event-stream`, "
        "a live stream of the events stored from now on (or after `Last-Event-ID`), one SSE message each "
        "with the event's id as its `id`.",
        responses={
            200: ResponseSpec(
                data_container=EventListEnvelope,
                description="A page of events (JSON), or with `Accept: text/event-stream` the live "
                f"stream. {SSE_DOC}",
                generate_examples=False,
            ),
            **problems("invalid_cursor", "validation_failed", "event_not_found", "insufficient_scope"),
        },
    )
    async def list_events(
        self,
        request: Req,
        limit: Limit = 20,
        cursor: Cursor = None,
        type: Annotated[
            str | None,
            Parameter(max_length=100, pattern=_TYPE_PATTERN, description="An event type, or a prefix."),
        ] = None,
        project: Annotated[
            str | None, Parameter(max_length=64, description="Only this project's events.")
        ] = None,
        created_gte: Annotated[
            datetime | None,
            QueryParameter(name="created[gte]", description="At or after this RFC 3339 time."),
        ] = None,
        created_lt: Annotated[
            datetime | None, QueryParameter(name="created[lt]", description="Before this RFC 3339 time.")
        ] = None,
    ) -> Response[Any]:
        who = caller(request)
        await _team_check(request, who, project)
        q = c.ListEvents(
            caller=who,
            limit=limit,
            cursor=cursor,
            type=type,
            project=project,
            created_gte=aware("created[gte]", created_gte),
            created_lt=aware("created[lt]", created_lt),
        )
        bus = _bus(request)
        if "text/event-stream" in request.headers.get("accept", ""):
            after = request.headers.get("last-event-id") or None
            if after is None:  # from now on: start after the newest event there is
                newest = await bus.call(msgspec.structs.replace(q, limit=1, cursor=None))
                after = newest.data[0].id if newest.data else ""
            elif after:  # an unknown id is a 404 now, not a broken stream later
                await bus.call(c.GetEvent(caller=who, event_id=after))
            return Stream(
                _follow(bus, q, after),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        page = await bus.call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(EventListEnvelope(data=page.data, meta=list_meta))

    @get(
        "/{event_id:str}",
        operation_id="getEvent",
        summary="Get an event",
        responses=problems("event_not_found", "insufficient_scope"),
    )
    async def get_event(self, request: Req, event_id: EventId) -> Response[EventEnvelope]:
        who = caller(request)
        event = await _bus(request).call(c.GetEvent(caller=who, event_id=event_id))
        if who.member_id is not None:
            project = event.data.get("project_id") or event.data.get("project")
            if not isinstance(project, str):
                raise ApiError("event_not_found", f"No event {event_id!r} in this account.")
            await _team_check(request, who, project)
        return ok(EventEnvelope(data=event, meta=meta()))


def _message(event: Event[dict[str, Any]]) -> bytes:
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event.id.encode(), event.type.encode(), _json.encode(event))


def _follow(bus: Bus, q: c.ListEvents, after: str) -> AsyncIterator[bytes]:
    last = after

    async def read() -> sse.Page:
        nonlocal last
        if last:
            page = await bus.call(msgspec.structs.replace(q, after=last, limit=100, cursor=None))
            data = page.data
        else:  # the account had no event yet: the oldest ones, once there are some
            page = await bus.call(msgspec.structs.replace(q, limit=100, cursor=None))
            data = list(reversed(page.data))
        if data:
            last = data[-1].id
        return b"".join(_message(event) for event in data), page.has_more and bool(last), False

    return sse.follow(bus, c.events_subject(q.caller.mode, q.caller.account_id), read)
