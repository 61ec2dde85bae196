"""`/v1/event-types`: the catalogue of public event types, each with a JSON Schema of its `data`.

The catalogue is code (`stratus_contracts.events`), the same for every account and mode, so these
routes answer from the gateway's memory and call no service; they still authorize (read scope,
tokens allowed) like every `/v1` route.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get
from litestar.params import PathParameter

from stratus_contracts import events, subjects
from stratus_gateway.envelope import ListMeta, Meta, meta, ok
from stratus_gateway.openapi_docs import problems
from stratus_gateway.problems import ApiError

TypeName = Annotated[
    str,
    PathParameter(description="The event type's name, e.g. `deployment.succeeded`.", max_length=100),
]


class EventType(msgspec.Struct, frozen=True, kw_only=True):
    """A public event type: what its events' `type` says, when they happen, the NATS subjects they
    travel on (a pattern, `*` for mode and account) and a JSON Schema of their `data` that stands
    alone (the Structs it refers to are in its own `$defs`)."""

    object: Literal["event_type"] = "event_type"
    name: str
    description: str
    subject: str
    schema: dict[str, Any]


class EventTypeEnvelope(msgspec.Struct, kw_only=True):
    data: EventType
    meta: Meta
    error: None = None


class EventTypeListEnvelope(msgspec.Struct, kw_only=True):
    data: list[EventType]
    meta: ListMeta
    error: None = None


@functools.cache
def catalogue() -> dict[str, EventType]:
    """Built once per process: schemas are generated from the Structs, which do not change while
    it runs."""
    return {
        name: EventType(
            name=name,
            description=t.description,
            subject=subjects.event("*", "*", t.aggregate, t.token),
            schema=events.data_schema(t),
        )
        for name, t in events.catalogue().items()
    }


class EventTypeController(Controller):
    path = "/event-types"
    tags = ["events"]

    @get(
        "/",
        operation_id="listEventTypes",
        summary="List event types",
        description="Every public event type, by name, with a JSON Schema of its `data`. One page "
        "holds the whole catalogue (`has_more` is false). The same catalogue, with the NATS subjects, "
        "is the AsyncAPI document at `/asyncapi.json`.",
        responses=problems("insufficient_scope", "ip_not_allowed"),
    )
    async def list_event_types(self) -> Response[EventTypeListEnvelope]:
        list_meta = ListMeta(request_id=meta().request_id, has_more=False, next_cursor=None)
        return ok(EventTypeListEnvelope(data=list(catalogue().values()), meta=list_meta))

    @get(
        "/{name:str}",
        operation_id="getEventType",
        summary="Get an event type",
        responses=problems("event_type_not_found", "insufficient_scope", "ip_not_allowed"),
    )
    async def get_event_type(self, name: TypeName) -> Response[EventTypeEnvelope]:
        found = catalogue().get(name)
        if found is None:
            raise ApiError("event_type_not_found", f"No event type is named {name!r}.")
        return ok(EventTypeEnvelope(data=found, meta=meta()))
