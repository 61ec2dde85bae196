"""Identity command and query handlers: load, decide, save, reply (store calls off the loop)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from opentelemetry import trace

from stratus_contracts.errors import DomainError
from stratus_contracts.identity import (
    Bootstrap,
    BootstrapResult,
    EnsureKey,
    GetKeyPrincipal,
    KeyView,
    Principal,
    RevokeKey,
    VerifyKey,
)
from stratus_contracts.ids import decode_id, encode_id, new_uuid
from stratus_eventstore.relay import Relay
from stratus_eventstore.store import Store
from stratus_identity import domain

_tracer = trace.get_tracer("stratus.identity")


def key_view(key: domain.ApiKey) -> KeyView:
    return KeyView(
        id=encode_id("key", key.id),
        account=key.account,
        mode=key.mode,
        name=key.name,
        hint=key.hint,
        scopes=key.scopes,
        created=key.created,
        revoked=key.revoked,
    )


def principal_of(key: domain.ApiKey) -> Principal:
    return Principal(
        key_id=encode_id("key", key.id),
        account_id=key.account,
        mode=key.mode,
        scopes=key.scopes,
        name=key.name,
        created=key.created,
        secret_created=key.created,
    )


class IdentityHandlers:
    def __init__(self, store: Store, relay: Relay | None) -> None:
        self.store = store
        self.relay = relay

    def _load(self, aggregate_id: uuid.UUID) -> Any:
        try:
            return self.store.repository.get(aggregate_id, projector_func=domain.project)
        except AggregateNotFoundError:
            return None

    def _save(self, events: list[Any]) -> None:
        if not events:
            return
        with _tracer.start_as_current_span("store.save") as span:
            span.set_attribute("stratus.events", len(events))
            self.store.save(*events)
        if self.relay is not None:
            self.relay.wakeup.set()

    def bootstrap_sync(self, cmd: Bootstrap) -> BootstrapResult:
        marker = self._load(domain.BOOTSTRAP_ID)
        if marker is not None:
            return BootstrapResult(account_id=encode_id("acct", marker.account_id), created=False)
        account_id = new_uuid()
        account = encode_id("acct", account_id)
        events = domain.bootstrap(None, account_id)
        key_ids = []
        for spec in cmd.keys:
            key_id = new_uuid()
            key_ids.append(encode_id("key", key_id))
            events += domain.create_key(key_id, account, spec)
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
        self._save(domain.create_key(key_id, account, cmd.key))
        return BootstrapResult(account_id=account, created=True, key_ids=[encode_id("key", key_id)])

    def verify_sync(self, q: VerifyKey) -> Principal:
        with _tracer.start_as_current_span("store.verify_key"):
            index = self._load(domain.key_hash_index_id(q.secret_hash))
            key = domain.verify(self._load(index.key_id) if index else None)
        return principal_of(key)

    def key_principal_sync(self, q: GetKeyPrincipal) -> Principal:
        key_uuid = decode_id("key", q.key_id)
        key = domain.verify(self._load(key_uuid) if key_uuid else None)
        return principal_of(key)

    def revoke_sync(self, cmd: RevokeKey) -> KeyView:
        key_uuid = decode_id("key", cmd.key_id)
        key = self._load(key_uuid) if key_uuid else None
        if not isinstance(key, domain.ApiKey) or key.account != cmd.account_id:
            raise DomainError("key_not_found", f"No API key {cmd.key_id!r} in this account.")
        events = domain.revoke(key)
        self._save(events)
        return key_view(domain.project(key, events))  # type: ignore[arg-type]

    async def bootstrap(self, cmd: Bootstrap) -> BootstrapResult:
        return await asyncio.to_thread(self.bootstrap_sync, cmd)

    async def ensure_key(self, cmd: EnsureKey) -> BootstrapResult:
        return await asyncio.to_thread(self.ensure_key_sync, cmd)

    async def verify(self, q: VerifyKey) -> Principal:
        return await asyncio.to_thread(self.verify_sync, q)

    async def key_principal(self, q: GetKeyPrincipal) -> Principal:
        return await asyncio.to_thread(self.key_principal_sync, q)

    async def revoke(self, cmd: RevokeKey) -> KeyView:
        return await asyncio.to_thread(self.revoke_sync, cmd)
