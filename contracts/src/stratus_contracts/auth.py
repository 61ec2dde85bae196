"""Who is acting: the caller every command and query carries, and the actor events record."""

from __future__ import annotations

from typing import Literal

import msgspec

from stratus_contracts.events import Actor, Mode

Scope = Literal["read", "write", "admin"]
ALL_SCOPES: tuple[Scope, ...] = ("read", "write", "admin")


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller, as the gateway resolved it. Services trust it and scope every
    lookup by `account_id` and `mode`; `None` restrictions mean unrestricted."""

    account_id: str
    mode: Mode
    key_id: str
    scopes: tuple[Scope, ...] = ALL_SCOPES
    project_ids: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None
    member_id: str | None = None
    token_id: str | None = None
    ip: str | None = None
    request_id: str | None = None
    # The client's Idempotency-Key: a service applies a command with one at most once.
    idempotency_key: str | None = None

    def actor(self) -> Actor:
        return Actor(
            key_id=self.key_id,
            member_id=self.member_id,
            token_id=self.token_id,
            ip=self.ip,
            request_id=self.request_id,
        )

    def may_see_project(self, project_id: str) -> bool:
        return self.project_ids is None or project_id in self.project_ids
