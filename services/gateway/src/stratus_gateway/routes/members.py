"""`/v1/members`: the people of an account (per mode): add, list, get and remove (admin scope).

Removing a member revokes every key bound to it, in the same commit.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import JSONBody, PathParameter

from stratus_bus import Bus
from stratus_contracts import identity as c
from stratus_gateway.auth import caller
from stratus_gateway.envelope import ListMeta, MemberEnvelope, MemberListEnvelope, meta, ok
from stratus_gateway.openapi_docs import LOCATION_HEADER, problems
from stratus_gateway.preconditions import (
    ETAG_HEADER,
    PRECONDITION_CODES,
    IfMatch,
    IfNoneMatch,
    etag,
    parse_if_match,
    unchanged,
)
from stratus_gateway.routes.params import Cursor, Limit
from stratus_gateway.schemas import MemberCreate

Req = Request[Any, Any, Any]
MemberId = Annotated[str, PathParameter(description="The member's id, `mem_…`.", max_length=64)]
ADMIN = {"scope": "admin", "keys_only": True}
DENIED = ("insufficient_scope", "token_not_allowed")


def _bus(request: Req) -> Bus:
    return request.app.state["bus"]


class MemberController(Controller):
    path = "/members"
    tags = ["identity"]

    @post(
        "/",
        operation_id="createMember",
        summary="Add a member",
        status_code=201,
        opt=ADMIN,
        response_headers=[ETAG_HEADER, LOCATION_HEADER],
        responses=problems("member_email_taken", *DENIED, body=True),
    )
    async def create(self, request: Req, data: JSONBody[MemberCreate]) -> Response[MemberEnvelope]:
        cmd = c.AddMember(caller=caller(request), email=data.email, name=data.name)
        member = await _bus(request).call(cmd)
        return ok(
            MemberEnvelope(data=member, meta=meta()),
            status=201,
            headers={"Location": f"/v1/members/{member.id}", **etag(member.version)},
        )

    @get(
        "/",
        operation_id="listMembers",
        summary="List members (newest first)",
        opt=ADMIN,
        responses=problems("invalid_cursor", "validation_failed", *DENIED),
    )
    async def list_members(
        self,
        request: Req,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> Response[MemberListEnvelope]:
        q = c.ListMembers(caller=caller(request), limit=limit, cursor=cursor)
        page = await _bus(request).call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(MemberListEnvelope(data=page.data, meta=list_meta))

    @get(
        "/{member_id:str}",
        operation_id="getMember",
        summary="Get a member",
        opt=ADMIN,
        response_headers=[ETAG_HEADER],
        responses=problems("member_not_found", *DENIED),
    )
    async def get_member(
        self, request: Req, member_id: MemberId, if_none_match: IfNoneMatch = None
    ) -> Response[MemberEnvelope]:
        q = c.GetMember(caller=caller(request), member_id=member_id)
        member = await _bus(request).call(q)
        if (not_modified := unchanged(if_none_match, member.version)) is not None:
            return not_modified
        return ok(MemberEnvelope(data=member, meta=meta()), headers=etag(member.version))

    @delete(
        "/{member_id:str}",
        operation_id="deleteMember",
        summary="Remove a member and revoke its keys",
        status_code=200,
        opt=ADMIN,
        response_headers=[ETAG_HEADER],
        responses=problems("member_not_found", *DENIED, *PRECONDITION_CODES),
    )
    async def remove(
        self, request: Req, member_id: MemberId, if_match: IfMatch = None
    ) -> Response[MemberEnvelope]:
        cmd = c.RemoveMember(
            caller=caller(request), member_id=member_id, expected_version=parse_if_match(if_match).version
        )
        member = await _bus(request).call(cmd)
        return ok(MemberEnvelope(data=member, meta=meta()), headers=etag(member.version))
