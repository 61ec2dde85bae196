"""Identity command and query handlers: load, decide, save, reply (store calls off the loop).

Every API command carries the gateway's `Caller`; its account and mode scope every lookup, so a
key or member of another account or mode is simply "not found". Operator commands (bootstrap,
accounts) come from the `stratus` command line and carry no caller.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from msgspec import UNSET
from opentelemetry import trace

from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.identity import (
    AccountCreatedResult,
    AccountView,
    AddMember,
    Bootstrap,
    BootstrapResult,
    CreateAccount,
    CreateKey,
    EnsureKey,
    GetKey,
    GetKeyPrincipal,
    GetMember,
    KeyPage,
    KeyView,
    ListKeys,
    ListMembers,
    MemberPage,
    MemberView,
    NewKey,
    Principal,
    RemoveMember,
    RevokeKey,
    RotateKey,
    SetPlan,
    UpdateKey,
    VerifyKey,
)
from stratus_contracts.ids import decode_id, encode_id, new_uuid
from stratus_eventstore.idempotency import deferrable
from stratus_eventstore.model import utcnow
from stratus_eventstore.relay import Relay
from stratus_eventstore.store import Store, retry_on_conflict
from stratus_eventstore.view import LocalView
from stratus_identity import domain, listing
from stratus_identity.views import account_view, key_view, member_view, principal_of

_tracer = trace.get_tracer("stratus.identity")
Clock = Callable[[], datetime]


class IdentityHandlers:
    def __init__(self, store: Store, view: LocalView, relay: Relay | None, clock: Clock = utcnow) -> None:
        self.store = store
        self.view = view
        self.relay = relay
        self.clock = clock

    # -- plumbing ---------------------------------------------------------------------------------

    def _load(self, aggregate_id: uuid.UUID | None) -> Any:
        return self.store.get_or_none(aggregate_id, domain.project)

    @deferrable  # under an Idempotency-Key, the index record joins this save (bootstrap)
    def _save(self, events: list[Any]) -> None:
        if not events:
            return
        with _tracer.start_as_current_span("store.save") as span:
            span.set_attribute("stratus.events", len(events))
            self.store.save(*events)
        self.view.catch_up()
        if self.relay is not None:
            self.relay.wakeup.set()

    def _key(self, caller: Caller, key_id: str) -> domain.ApiKey:
        """The caller's key in the caller's mode, or 404: another tenant's key is indistinguishable."""
        key = self._load(decode_id("key", key_id))
        if not isinstance(key, domain.ApiKey) or key.account != caller.account_id or key.mode != caller.mode:
            raise DomainError("key_not_found", f"No API key {key_id!r} in this account.")
        return key

    def _member(self, caller: Caller, member_id: str) -> domain.Member:
        member = self._load(decode_id("mem", member_id))
        if (
            not isinstance(member, domain.Member)
            or member.account != caller.account_id
            or member.mode != caller.mode
            or member.removed is not None
        ):
            raise DomainError("member_not_found", f"No member {member_id!r} in this account.")
        return member

    def _plan(self, account: str) -> str:
        state = self._load(decode_id("acct", account))
        return state.plan if isinstance(state, domain.Account) else "free"

    # -- accounts (operator) ----------------------------------------------------------------------

    def bootstrap_sync(self, cmd: Bootstrap) -> BootstrapResult:
        marker = self._load(domain.BOOTSTRAP_ID)
        if marker is not None:
            return BootstrapResult(account_id=encode_id("acct", marker.account_id), created=False)
        now = self.clock()
        account_id = new_uuid()
        account = encode_id("acct", account_id)
        events = domain.bootstrap(None, account_id, now, cmd.plan)
        key_ids = []
        for spec in cmd.keys:
            key_id = new_uuid()
            key_ids.append(encode_id("key", key_id))
            events += domain.create_key(key_id, account, spec, now)
        # One save: the account, its keys and the marker commit together or not at all.
        self._save(events)
        return BootstrapResult(account_id=account, created=True, key_ids=key_ids)

    def ensure_key_sync(self, cmd: EnsureKey) -> BootstrapResult:
        marker = self._load(domain.BOOTSTRAP_ID)
        if marker is None:
            raise DomainError("account_not_found", "Bootstrap the stack before ensuring keys.")
        account = encode_id("acct", marker.account_id)
        index = self._load(domain.key_hash_index_id(cmd.key.secret_hash))
        if index is not None:
            key = self._load(index.key_id)
            # A revoked admin key named by STRATUS_ADMIN_KEY stays revoked: revocation wins.
            return BootstrapResult(account_id=account, created=False, key_ids=[encode_id("key", key.id)])
        key_id = new_uuid()
        self._save(domain.create_key(key_id, account, cmd.key, self.clock()))
        return BootstrapResult(account_id=account, created=True, key_ids=[encode_id("key", key_id)])

    def create_account_sync(self, cmd: CreateAccount) -> AccountCreatedResult:
        now = self.clock()
        account_id = new_uuid()
        account = encode_id("acct", account_id)
        events = domain.create_account(account_id, cmd.name, cmd.plan, now)
        key_ids = []
        for spec in cmd.keys:
            key_id = new_uuid()
            key_ids.append(encode_id("key", key_id))
            events += domain.create_key(key_id, account, spec, now)
        self._save(events)
        return AccountCreatedResult(
            account=account_view(domain.project(None, events[:1])),  # type: ignore[arg-type]
            key_ids=key_ids,
        )

    def set_plan_sync(self, cmd: SetPlan) -> AccountView:
        def attempt() -> AccountView:
            account = self._load(decode_id("acct", cmd.account_id))
            if not isinstance(account, domain.Account):
                raise DomainError("account_not_found", f"No account {cmd.account_id!r}.")
            self.view.catch_up()
            rows = self.view.query(listing.ACCOUNT_KEYS_SQL, (cmd.account_id,))
            keys = [self._load(decode_id("key", r["id"])) for r in rows]
            events = domain.set_plan(account, cmd.plan, keys, self.clock())
            self._save(events)
            return account_view(domain.project(account, events[:1]))  # type: ignore[arg-type]

        return retry_on_conflict(attempt)

    # -- verification (the gateway's auth path) ---------------------------------------------------

    def verify_sync(self, q: VerifyKey) -> Principal:
        with _tracer.start_as_current_span("store.verify_key"):
            index = self._load(domain.key_hash_index_id(q.secret_hash))
            key = self._load(index.key_id) if index else None
            key, secret = domain.verify(key, q.secret_hash, self.clock())
            return principal_of(key, secret, self._plan(key.account))

    def key_principal_sync(self, q: GetKeyPrincipal) -> Principal:
        key, secret = domain.verify(self._load(decode_id("key", q.key_id)), None, self.clock())
        return principal_of(key, secret, self._plan(key.account))

    # -- keys -------------------------------------------------------------------------------------

    def create_key_sync(self, cmd: CreateKey) -> KeyView:
        caller = cmd.caller
        asked = domain.KeySettings(
            name=cmd.name,
            scopes=cmd.scopes,
            project_ids=cmd.project_ids,
            environments=cmd.environments,
            allowed_ips=cmd.allowed_ips,
            expires_at=cmd.expires_at,
        )
        settings = domain.validate(domain.inherit(caller, asked))
        member_id = cmd.member_id or caller.member_id
        domain.check_within(caller, settings, member_id)
        spec = NewKey(mode=caller.mode, secret_hash=cmd.secret_hash, hint=cmd.hint)
        key_id = new_uuid()

        def attempt() -> KeyView:
            member = self._member(caller, member_id) if member_id else None
            now = self.clock()
            events = domain.create_key(
                key_id, caller.account_id, spec, now, settings=settings, member=member, actor=caller.actor()
            )
            self._save(events)
            return key_view(domain.project(None, events[:1]), now)  # type: ignore[arg-type]

        return retry_on_conflict(attempt)

    def list_keys_sync(self, q: ListKeys) -> KeyPage:
        # Another replica may have written since our last look: read our own writes.
        self.view.catch_up()
        sql, params = listing.page_sql(
            "keys", q.caller.account_id, q.caller.mode, q.limit, q.cursor, q.revoked
        )
        ids, has_more, cursor = listing.page_ids("keys", self.view.query(sql, params), q.limit)
        now = self.clock()
        views = [key_view(self._key(q.caller, key_id), now) for key_id in ids]
        return KeyPage(data=views, has_more=has_more, next_cursor=cursor)

    def get_key_sync(self, q: GetKey) -> KeyView:
        return key_view(self._key(q.caller, q.key_id), self.clock())

    def update_key_sync(self, cmd: UpdateKey) -> KeyView:
        caller = cmd.caller

        def attempt() -> KeyView:
            key = self._key(caller, cmd.key_id)
            domain.manageable(caller, key)
            domain.require_version(key.version, cmd.expected_version, "This key")
            old = key.settings
            asked = domain.KeySettings(
                name=old.name if cmd.name is None else cmd.name,
                scopes=old.scopes if cmd.scopes is None else cmd.scopes,
                project_ids=old.project_ids if cmd.project_ids is UNSET else cmd.project_ids,
                environments=old.environments if cmd.environments is UNSET else cmd.environments,
                allowed_ips=old.allowed_ips if cmd.allowed_ips is UNSET else (cmd.allowed_ips or ()),
                expires_at=old.expires_at if cmd.expires_at is UNSET else cmd.expires_at,
            )
            settings = domain.validate(asked)
            domain.check_within(caller, settings, key.member_id)
            now = self.clock()
            events = domain.update_key(key, settings, now, caller.actor())
            self._save(events)
            return key_view(domain.project(key, events), now)  # type: ignore[arg-type]

        return retry_on_conflict(attempt)

    def rotate_key_sync(self, cmd: RotateKey) -> KeyView:
        caller = cmd.caller

        def attempt() -> KeyView:
            key = self._key(caller, cmd.key_id)
            domain.manageable(caller, key)
            domain.require_version(key.version, cmd.expected_version, "This key")
            now = self.clock()
            events = domain.rotate_key(
                key, cmd.secret_hash, cmd.hint, cmd.overlap_seconds, now, caller.actor()
            )
            self._save(events)
            return key_view(domain.project(key, events[:1]), now)  # type: ignore[arg-type]

        return retry_on_conflict(attempt)

    def revoke_sync(self, cmd: RevokeKey) -> KeyView:
        def attempt() -> KeyView:
            if cmd.caller is not None:
                key = self._key(cmd.caller, cmd.key_id)
                domain.manageable(cmd.caller, key)
            else:
                key = self._load(decode_id("key", cmd.key_id))
                if not isinstance(key, domain.ApiKey) or key.account != cmd.account_id:
                    raise DomainError("key_not_found", f"No API key {cmd.key_id!r} in this account.")
            domain.require_version(key.version, cmd.expected_version, "This key")
            now = self.clock()
            events = domain.revoke(key, now, cmd.caller.actor() if cmd.caller else None)
            self._save(events)
            return key_view(domain.project(key, events), now)  # type: ignore[arg-type]

        return retry_on_conflict(attempt)

    # -- members ----------------------------------------------------------------------------------

    def add_member_sync(self, cmd: AddMember) -> MemberView:
        caller = cmd.caller
        email = domain.normalise_email(cmd.email)
        member_id = new_uuid()

        def attempt() -> MemberView:
            index = self._load(domain.email_index_id(caller.account_id, caller.mode, email))
            events = domain.add_member(
                member_id,
                caller.account_id,
                caller.mode,
                email,
                cmd.name,
                index,
                self.clock(),
                caller.actor(),
            )
            self._save(events)
            return member_view(domain.project(None, events[:1]))  # type: ignore[arg-type]

        return retry_on_conflict(attempt)

    def get_member_sync(self, q: GetMember) -> MemberView:
        return member_view(self._member(q.caller, q.member_id))

    def list_members_sync(self, q: ListMembers) -> MemberPage:
        self.view.catch_up()
        sql, params = listing.page_sql("members", q.caller.account_id, q.caller.mode, q.limit, q.cursor)
        ids, has_more, cursor = listing.page_ids("members", self.view.query(sql, params), q.limit)
        views = [member_view(self._member(q.caller, member_id)) for member_id in ids]
        return MemberPage(data=views, has_more=has_more, next_cursor=cursor)

    def remove_member_sync(self, cmd: RemoveMember) -> MemberView:
        caller = cmd.caller

        def attempt() -> MemberView:
            member = self._member(caller, cmd.member_id)
            domain.require_version(member.version, cmd.expected_version, "This member")
            index = self._load(domain.email_index_id(member.account, member.mode, member.email))
            keys = [self._load(key_id) for key_id in member.key_ids]
            events = domain.remove_member(member, index, keys, self.clock(), caller.actor())
            self._save(events)
            return member_view(domain.project(member, events[:1]))  # type: ignore[arg-type]

        return retry_on_conflict(attempt)

    # -- async faces for the bus: the store is synchronous, so it runs off the event loop ---------

    async def bootstrap(self, cmd: Bootstrap) -> BootstrapResult:
        return await asyncio.to_thread(self.bootstrap_sync, cmd)

    async def ensure_key(self, cmd: EnsureKey) -> BootstrapResult:
        return await asyncio.to_thread(self.ensure_key_sync, cmd)

    async def create_account(self, cmd: CreateAccount) -> AccountCreatedResult:
        return await asyncio.to_thread(self.create_account_sync, cmd)

    async def set_plan(self, cmd: SetPlan) -> AccountView:
        return await asyncio.to_thread(self.set_plan_sync, cmd)

    async def verify(self, q: VerifyKey) -> Principal:
        return await asyncio.to_thread(self.verify_sync, q)

    async def key_principal(self, q: GetKeyPrincipal) -> Principal:
        return await asyncio.to_thread(self.key_principal_sync, q)

    async def create_key(self, cmd: CreateKey) -> KeyView:
        return await asyncio.to_thread(self.create_key_sync, cmd)

    async def list_keys(self, q: ListKeys) -> KeyPage:
        return await asyncio.to_thread(self.list_keys_sync, q)

    async def get_key(self, q: GetKey) -> KeyView:
        return await asyncio.to_thread(self.get_key_sync, q)

    async def update_key(self, cmd: UpdateKey) -> KeyView:
        return await asyncio.to_thread(self.update_key_sync, cmd)

    async def rotate_key(self, cmd: RotateKey) -> KeyView:
        return await asyncio.to_thread(self.rotate_key_sync, cmd)

    async def revoke(self, cmd: RevokeKey) -> KeyView:
        return await asyncio.to_thread(self.revoke_sync, cmd)

    async def add_member(self, cmd: AddMember) -> MemberView:
        return await asyncio.to_thread(self.add_member_sync, cmd)

    async def get_member(self, q: GetMember) -> MemberView:
        return await asyncio.to_thread(self.get_member_sync, q)

    async def list_members(self, q: ListMembers) -> MemberPage:
        return await asyncio.to_thread(self.list_members_sync, q)

    async def remove_member(self, cmd: RemoveMember) -> MemberView:
        return await asyncio.to_thread(self.remove_member_sync, cmd)
