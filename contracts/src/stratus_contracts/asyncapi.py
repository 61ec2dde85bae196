"""The AsyncAPI 3.0 document of Stratus's NATS subjects, generated from the contracts.

Two parts, both from the types that travel (no subject or schema is written here by hand):

* **Events**: a channel per catalogued event type (`stratus_contracts.events.catalogue()`) on the
  JetStream stream `EVENTS`, address `evt.{mode}.{account}.<resource>.<event>`, the payload the
  event envelope (`Event`) as JSON with `data` that type's Struct. The services `send` them.
* **Requests**: a channel per command and query (`cmd.<service>.<verb>`, `qry.<service>.<verb>`:
  every `Message` subclass with a subject in a contract module) and each service's
  `qry.<service>.ping`, which the services `receive` in their queue group and answer on the
  requester's reply subject with a `Reply`; both are MessagePack.

`document()` builds it; `uv run python -m stratus_contracts.asyncapi > docs/asyncapi.json` writes
the copy in docs/ (a test keeps it equal), and the gateway serves it at `GET /asyncapi.json`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from typing import Any

import msgspec

import stratus_contracts
from stratus_contracts import services, subjects
from stratus_contracts.events import Event, EventType, catalogue, tidy
from stratus_contracts.messages import Message
from stratus_contracts.reply import Ping, Pong, Reply

ASYNCAPI_VERSION = "3.0.0"
# The version of the API this describes; it moves with the HTTP API's (the OpenAPI `info`).
API_VERSION = "1.0.0"
SCHEMAS = "#/components/schemas/{name}"
# The bus sends requests and replies as MessagePack (msgspec); no content type travels with them.
MSGPACK = "application/msgpack"


def _id(text: str) -> str:
    """A channel, operation or message id: AsyncAPI ids take `[A-Za-z0-9_-]`, subjects and event
    type names have dots (`env.vars.changed` → `env-vars-changed`; names have no `-`, so no two
    collide)."""
    return text.replace(".", "-")


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _summary(doc: str | None) -> str | None:
    """A class's docstring, first paragraph, on one line (None when it has none of its own)."""
    if not doc:
        return None
    return " ".join(inspect.cleandoc(doc).split("\n\n", 1)[0].split())


def message_types() -> list[type[Message[Any]]]:
    """Every command and query: each contract module's own `Message` subclasses with a subject
    (a service's generic base, such as `ProjectsCommand`, has none), by subject."""
    found: dict[str, type[Message[Any]]] = {}
    for info in pkgutil.iter_modules(stratus_contracts.__path__):
        module = importlib.import_module(f"stratus_contracts.{info.name}")
        for value in vars(module).values():
            declared = (
                isinstance(value, type)
                and issubclass(value, Message)
                and value.subject
                and value.__module__ == module.__name__  # declared here, not imported
            )
            if declared and found.setdefault(value.subject, value) is not value:
                raise ValueError(f"two message types on {value.subject}")
    return [found[s] for s in sorted(found)]


class _Request(msgspec.Struct, frozen=True):
    """One request/reply channel: its subject, the type sent and the type answered."""

    subject: str
    service: str
    body: type
    returns: Any
    summary: str | None


def _requests() -> list[_Request]:
    made = [
        _Request(m.subject, m.service, m, m.returns, _summary(m.__dict__.get("__doc__")))
        for m in message_types()
    ]
    # Every service answers a ping (`subjects.ping`); `Ping` is no `Message`, so it is added here.
    pong = "Liveness: the replica that answered, and its counters."
    made += [_Request(subjects.ping(s.name), s.name, Ping, Pong, pong) for s in services.SERVICES]
    return sorted(made, key=lambda r: r.subject)


def _envelope(event_type: EventType[Any], template: dict[str, Any]) -> dict[str, Any]:
    """The payload of one event type: the `Event` envelope with `type` fixed to its name."""
    payload = msgspec.json.decode(msgspec.json.encode(template))  # a copy: one template serves many types
    payload["title"] = f"Event[{event_type.name}]"
    payload["description"] = (
        "The event envelope (API.md, Events) as JSON; `data` is the type's Struct, "
        "`actor` who caused it (for audit)."
    )
    props = payload["properties"]
    props["id"]["description"] = "`evt_…`, also in `Nats-Msg-Id` (JetStream drops re-publishes by it)."
    props["type"] = {"type": "string", "const": event_type.name}
    props["created"] |= {"format": "date-time", "description": "RFC 3339, UTC."}
    return payload


def _parameters() -> dict[str, Any]:
    return {
        "mode": {
            "enum": ["live", "test"],
            "description": "The data's mode: the key's (`sk_live_…`, `sk_test_…`); modes never mix.",
        },
        "account": {
            "description": "The account the event belongs to, `acct_…` (`*` for every account).",
            "examples": ["acct_01hzy3v9k8m2q4r6t8w0x2z4b6"],
        },
    }


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready dict, the same on every call)."""
    types = catalogue()
    requests = _requests()
    data_types = list(dict.fromkeys(t.data for t in types.values()))
    bodies = [r.body for r in requests]
    replies = [Reply[r.returns] for r in requests]
    # One call for every type, so each Struct is one component whatever refers to it (msgspec
    # names them; types of one name in two modules get their module path, e.g. the three
    # `RebuildReadModels`).
    refs, schemas = msgspec.json.schema_components(
        [*(Event[d] for d in data_types), *bodies, *replies], ref_template=SCHEMAS
    )
    name_of = [ref["$ref"].rsplit("/", 1)[-1] for ref in refs]
    # The generic envelopes become each event message's own payload (with its `type` fixed), so
    # they leave the shared components.
    templates = {d: schemas.pop(n) for d, n in zip(data_types, name_of[: len(data_types)], strict=True)}
    body_refs = dict(zip(bodies, refs[len(data_types) : len(data_types) + len(bodies)], strict=True))
    reply_refs = refs[len(data_types) + len(bodies) :]

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    for name, t in types.items():
        channel, message = f"evt-{_id(name)}", _id(name)
        messages[message] = {
            "name": name,
            "title": name,
            "summary": t.description,
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {"Nats-Msg-Id": {"type": "string", "description": "The event's `id`."}},
            },
            "payload": _envelope(t, templates[t.data]),
            "tags": [{"name": t.aggregate}],
        }
        channels[channel] = {
            "address": subjects.event("{mode}", "{account}", t.aggregate, t.token),
            "title": name,
            "summary": t.description,
            "description": f"Stored on the JetStream stream `{subjects.EVENTS_STREAM}` (subjects "
            f"`{subjects.EVENTS_SUBJECTS}`); read it with a durable or ordered consumer filtered on "
            f"`{subjects.event('*', '*', t.aggregate, t.token)}`.",
            "parameters": {p: _ref("components", "parameters", p) for p in ("mode", "account")},
            "messages": {message: _ref("components", "messages", message)},
            "x-jetstream-stream": subjects.EVENTS_STREAM,
        }
        operations[f"send-{_id(name)}"] = {
            "action": "send",
            "channel": _ref("channels", channel),
            "title": f"Publish {name}",
            "summary": t.description,
            "messages": [_ref("channels", channel, "messages", message)],
            "tags": [{"name": "events"}],
        }

    reply_messages: dict[str, Any] = {}
    for r, reply_ref in zip(requests, reply_refs, strict=True):
        kind = r.subject.split(".", 1)[0]
        channel = _id(r.subject)
        request, reply = channel, f"{channel}-reply"
        title = r.body.__name__
        messages[request] = {
            "name": title,
            "title": title,
            **({"summary": r.summary} if r.summary else {}),
            "contentType": MSGPACK,
            "payload": {
                "type": "array",
                "description": "The bus's envelope: `[request_id, traceparent, message]` (the "
                "request id and W3C trace context travel in the payload, not in headers).",
                "items": [
                    {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "`req_…`."},
                    {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "W3C `traceparent`."},
                    body_refs[r.body],
                ],
                "additionalItems": False,
                "minItems": 3,
            },
        }
        messages[reply] = {
            "name": f"{title}Reply",
            "title": f"{title} reply",
            "summary": "`result`, or `error` with a catalogued `code` (docs/errors.md); `replayed` "
            "marks a stored answer to an earlier command with the same Idempotency-Key.",
            "contentType": MSGPACK,
            "payload": reply_ref,
        }
        reply_messages[reply] = _ref("components", "messages", reply)
        channels[channel] = {
            "address": r.subject,
            "title": r.subject,
            **({"summary": r.summary} if r.summary else {}),
            "messages": {request: _ref("components", "messages", request)},
        }
        operations[f"receive-{channel}"] = {
            "action": "receive",
            "channel": _ref("channels", channel),
            "title": f"{'Command' if kind == 'cmd' else 'Query'} {title}",
            **({"summary": r.summary} if r.summary else {}),
            "messages": [_ref("channels", channel, "messages", request)],
            "reply": {
                "channel": _ref("channels", "reply"),
                "messages": [_ref("channels", "reply", "messages", reply)],
            },
            # Replicas of a service share its requests: one of the group answers each.
            "bindings": {"nats": {"queue": subjects.queue_group(r.service), "bindingVersion": "0.1.0"}},
            "tags": [{"name": "commands" if kind == "cmd" else "queries"}, {"name": r.service}],
        }
    channels["reply"] = {
        # NATS request/reply: the answer goes to the subject the request named as its reply-to
        # (the bus's own inbox), so the address is not known in advance.
        "address": None,
        "title": "Reply subject",
        "description": "The requester's reply-to subject (a NATS inbox, `_INBOX.…`).",
        "messages": reply_messages,
    }

    made = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Stratus internal NATS subjects",
            "version": API_VERSION,
            "description": _DESCRIPTION,
            "tags": [
                {"name": "events", "description": "Public events on the JetStream stream `EVENTS`."},
                {"name": "commands", "description": "Requests that change state: `cmd.<service>.<verb>`."},
                {"name": "queries", "description": "Requests that read state: `qry.<service>.<verb>`."},
            ],
        },
        "servers": {
            "nats": {
                "host": "{host}",
                "protocol": "nats",
                "description": "The stack's NATS server with JetStream (`NATS_URL`; `stratus up` "
                "starts one on a free port and records it in `$STRATUS_DATA_DIR/stack.json`).",
                "variables": {"host": {"default": "127.0.0.1:4222", "description": "host:port"}},
            }
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": tidy(schemas),
            "messages": tidy(messages),
            "parameters": _parameters(),
        },
    }
    # Through JSON and back, so that the dict is what a reader of the JSON gets (msgspec gives
    # tuple defaults, such as a caller's scopes, as tuples).
    return msgspec.json.decode(msgspec.json.encode(made))


_DESCRIPTION = """\
What travels on Stratus's NATS, from the application's side (the Stratus services): the events \
they `send` and the requests they `receive`. Generated from the contracts \
(`stratus_contracts.asyncapi`); the HTTP API is `/openapi.json`.

**Events** are JSON on the JetStream stream `EVENTS` (subjects `evt.>`, duplicate window 24 h), \
subject `evt.<mode>.<account>.<resource>.<event>`, each with `Nats-Msg-Id` = its `id`: a \
re-publish after a crash carries the same id, so a consumer that wants each event once \
deduplicates by `id`. Subscribe with a durable pull consumer (at least once, ack after handling) \
or an ordered consumer; filter with wildcards (`evt.live.*.deployment.>`, `evt.*.acct_….>`). The \
same catalogue with a standalone JSON Schema per type is `GET /v1/event-types`.

**Commands and queries** are NATS request/reply on `cmd.<service>.<verb>` and \
`qry.<service>.<verb>` (queue group `svc.<service>`), MessagePack both ways: the request is \
`[request_id, traceparent, message]`, the reply a `Reply` (`result`, or `error` with a code from \
docs/errors.md). They are internal: a service trusts the `caller` a request carries (the gateway \
resolved it), so only the platform's own processes may publish on `cmd.>` and `qry.>`; the \
schemas describe the values as decoded (MessagePack timestamps for times, bin for bytes).
"""


def text() -> str:
    """docs/asyncapi.json as written: `uv run python -m stratus_contracts.asyncapi > docs/asyncapi.json`."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(text(), end="")  # noqa: T201
