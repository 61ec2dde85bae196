"""Public events: the envelope published to the JetStream stream `EVENTS` (see API.md, Events) and
the catalogue of event types, each with the typed Struct its `data` carries.

A contract module declares its service's event types with `event_type(...)`; the service's
publisher builds events only through them, so every event on the stream has a catalogued type
and `data` of its declared Struct. The catalogue is what the webhook catalogue (`GET
/v1/event-types`, a standalone schema per type from `data_schema()`) and the AsyncAPI document
(`stratus_contracts.asyncapi`) are generated from.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import msgspec

from stratus_contracts import subjects

Mode = Literal["live", "test"]
D = TypeVar("D")


class Actor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who caused an event (for audit): the acting key, member, token, client IP and request.
    Domain events record it; public events carry it."""

    key_id: str | None = None
    member_id: str | None = None
    token_id: str | None = None
    ip: str | None = None
    request_id: str | None = None


class Event(msgspec.Struct, Generic[D], frozen=True, kw_only=True):
    """`Event` decodes any event (`data` as plain JSON); `Event[T]` one whose data is a `T`."""

    id: str
    object: Literal["event"] = "event"
    type: str
    created: datetime
    mode: Mode
    account: str
    data: D
    actor: Actor | None = None


class EventType(Generic[D]):
    """One catalogued event type: `project.created`, whose `data` is a `Project`.

    Its subject is `evt.<mode>.<account>.<aggregate>.<event>`: the aggregate is the type's
    first word, the event the rest with dots as underscores (`env.vars.changed` travels on
    `evt.live.acct_….env.vars_changed`)."""

    def __init__(self, name: str, data: type[D], description: str) -> None:
        aggregate, _, rest = name.partition(".")
        if not rest:
            raise ValueError(f"event type {name!r} needs a resource and a past-tense verb")
        self.name = name
        self.data = data
        self.description = description
        self.aggregate = aggregate
        self.token = rest.replace(".", "_")

    def subject(self, mode: str, account: str) -> str:
        return subjects.event(mode, account, self.aggregate, self.token)

    def event(
        self, *, id: str, created: datetime, mode: Mode, account: str, data: D, actor: Actor | None
    ) -> Event[D]:
        if not isinstance(data, self.data):
            raise TypeError(f"{self.name} carries {self.data.__name__}, not {type(data).__name__}")
        return Event(
            id=id, type=self.name, created=created, mode=mode, account=account, data=data, actor=actor
        )

    def __repr__(self) -> str:
        return f"EventType({self.name!r}, {self.data.__name__})"


CATALOGUE: dict[str, EventType[Any]] = {}


def event_type(name: str, data: type[D], description: str) -> EventType[D]:
    """Declare a public event type (once, in its service's contract module)."""
    if name in CATALOGUE:
        raise ValueError(f"event type {name!r} is declared twice")
    CATALOGUE[name] = declared = EventType(name, data, description)
    return declared


def catalogue() -> dict[str, EventType[Any]]:
    """Every event type of every service (importing their contract modules declares them)."""
    from stratus_contracts import audit, deployments, envs, identity, projects, webhooks  # noqa: F401 - declare types

    return dict(sorted(CATALOGUE.items()))


def schema() -> dict[str, Any]:
    """JSON Schema of every event type's `data`: `{"types": {name: {"description", "data":
    {"$ref"}}}, "components": {...}}`, for the webhook catalogue and an AsyncAPI document."""
    types = catalogue()
    refs, components = msgspec.json.schema_components(
        [t.data for t in types.values()], ref_template="#/components/schemas/{name}"
    )
    return {
        "types": {
            name: {"description": t.description, "subject": f"evt.*.*.{t.aggregate}.{t.token}", "data": ref}
            for (name, t), ref in zip(types.items(), refs, strict=True)
        },
        "components": components,
    }


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def data_schema(event_type: EventType[Any]) -> dict[str, Any]:
    """JSON Schema of one type's `data` that stands alone (`GET /v1/event-types` serves each
    type by itself): the Struct's own schema at the top, the Structs it refers to in `$defs`."""
    (ref,), defs = msgspec.json.schema_components([event_type.data], ref_template="#/$defs/{name}")
    root = defs[ref["$ref"].rsplit("/", 1)[-1]]
    # The root leaves `$defs` unless something (itself, say) still refers to it by `$ref`.
    rest = {name: d for name, d in defs.items() if d is not root}
    if ref["$ref"].encode() in msgspec.json.encode([root, rest]):
        rest = defs
    return tidy({"$schema": JSON_SCHEMA_DIALECT, **root, **({"$defs": rest} if rest else {})})


def tidy(schema: Any) -> Any:
    """The schema with each `description` dedented: msgspec copies docstrings as written, with
    the source's indentation after the first line."""
    if isinstance(schema, dict):
        return {
            k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else tidy(v)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [tidy(v) for v in schema]
    return schema


def markdown() -> str:
    """docs/events.md, generated: `uv run python -m stratus_contracts.events > docs/events.md`."""
    described = schema()
    components = described["components"]
    lines = [
        "# Event types",
        "",
        'Every public event is `{"id": "evt_…", "object": "event", "type", "created", "mode",',
        '"account", "data", "actor"}` on the JetStream stream `EVENTS`, subject',
        "`evt.<mode>.<account>.<resource>.<event>`. Generated from the catalogue in",
        "`contracts/src/stratus_contracts/events.py` (each service's contract module declares its types) by",
        "`uv run python -m stratus_contracts.events > docs/events.md` (a test keeps them in step).",
        "",
        "| type | subject | data | when |",
        "|---|---|---|---|",
    ]
    for name, entry in described["types"].items():
        data = entry["data"]["$ref"].rsplit("/", 1)[-1]
        lines.append(f"| `{name}` | `{entry['subject']}` | `{data}` | {entry['description']} |")
    lines += ["", "## Data", ""]
    for name, component in components.items():
        fields = ", ".join(f"`{field}`" for field in component.get("properties", {}))
        lines.append(f"* `{name}`: {fields}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # Run as a script this module is `__main__`; the contract modules declare their types into
    # the importable `stratus_contracts.events`, so ask that one.
    from stratus_contracts import events

    print(events.markdown(), end="")  # noqa: T201
