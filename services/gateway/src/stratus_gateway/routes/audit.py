"""`/v1/audit-events`: the account's audit log (admin scope), newest first, from the audit service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import Parameter, QueryParameter

from stratus_bus import Bus
from stratus_contracts import audit as c
from stratus_gateway.auth import caller
from stratus_gateway.envelope import ListMeta, meta, ok
from stratus_gateway.openapi_docs import problems
from stratus_gateway.routes.params import Cursor, Limit, aware

Req = Request[Any, Any, Any]
_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
_ACTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.?\*?$"


class AuditListEnvelope(msgspec.Struct, kw_only=True):
    data: list[c.AuditEvent]
    meta: ListMeta
    error: None = None


class AuditController(Controller):
    path = "/audit-events"
    tags = ["audit"]

    @get(
        "/",
        operation_id="listAuditEvents",
        summary="List audit events",
        description="Every key, member, account and team-access change and every secret reveal in "
        "this account and mode, newest first, with the acting key, member, client IP and request id.",
        opt={"scope": "admin"},
        responses=problems("insufficient_scope", "ip_not_allowed", "invalid_cursor", "validation_failed"),
    )
    async def list_audit_events(
        self,
        request: Req,
        limit: Limit = 20,
        cursor: Cursor = None,
        actor: Annotated[
            str | None,
            Parameter(
                max_length=64,
                pattern=_ID_PATTERN,
                description="Only changes made by this key (`key_…`), member or token id.",
            ),
        ] = None,
        action: Annotated[
            str | None,
            Parameter(
                max_length=100,
                pattern=_ACTION_PATTERN,
                description="An event type (`key.revoked`), or a prefix ending in `.` or `*` "
                "(`key.`, `project.member_*`).",
            ),
        ] = None,
        resource: Annotated[
            str | None,
            Parameter(
                max_length=64,
                pattern=_ID_PATTERN,
                description="Only events about this id: the resource itself or one it refers to "
                "(a project id also matches its team-access changes).",
            ),
        ] = None,
        created_gte: Annotated[
            datetime | None,
            QueryParameter(name="created[gte]", description="Only events at or after this RFC 3339 time."),
        ] = None,
        created_lt: Annotated[
            datetime | None,
            QueryParameter(name="created[lt]", description="Only events before this RFC 3339 time."),
        ] = None,
    ) -> Response[AuditListEnvelope]:
        q = c.ListAuditEvents(
            caller=caller(request),
            limit=limit,
            cursor=cursor,
            actor=actor,
            action=action,
            resource=resource,
            created_gte=aware("created[gte]", created_gte),
            created_lt=aware("created[lt]", created_lt),
        )
        bus: Bus = request.app.state["bus"]
        page = await bus.call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(AuditListEnvelope(data=page.data, meta=list_meta))
