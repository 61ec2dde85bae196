"""Composition root of the identity service: one store (accounts span modes), its list view,
endpoints, relay."""

from __future__ import annotations

import asyncio
import contextlib

from stratus_bus import Bus
from stratus_bus.config import data_dir, relay_enabled
from stratus_bus.runtime import spawn
from stratus_contracts import identity as c
from stratus_contracts import subjects
from stratus_eventstore.relay import Relay
from stratus_eventstore.store import Store, open_store
from stratus_eventstore.view import LocalView
from stratus_identity import listing
from stratus_identity.handlers import IdentityHandlers
from stratus_identity.publish import to_public

PARTITION = "main"


def open_identity() -> tuple[Store, LocalView]:
    """The identity store and its list view (a local SQLite file, rebuilt from the log if absent)."""
    root = data_dir()
    store = open_store(c.SERVICE, PARTITION, root)
    view = LocalView(root / f"{c.SERVICE}-{PARTITION}.view.db", store, listing.SCHEMA, listing.apply)
    return store, view


async def setup(bus: Bus, stack: contextlib.AsyncExitStack) -> None:
    store, view = await asyncio.to_thread(open_identity)
    stack.callback(store.close)
    stack.callback(view.close)
    await asyncio.to_thread(view.catch_up)
    relay = Relay(store, bus.js, to_public) if relay_enabled() else None
    if relay is not None:
        spawn(stack, relay.run(), name="relay")

    h = IdentityHandlers(store, view, relay)
    q = subjects.queue_group(c.SERVICE)
    endpoints = [
        (subjects.command(c.SERVICE, "bootstrap"), c.Bootstrap, h.bootstrap),
        (subjects.command(c.SERVICE, "ensure_key"), c.EnsureKey, h.ensure_key),
        (subjects.command(c.SERVICE, "create_account"), c.CreateAccount, h.create_account),
        (subjects.command(c.SERVICE, "set_plan"), c.SetPlan, h.set_plan),
        (subjects.command(c.SERVICE, "create_key"), c.CreateKey, h.create_key),
        (subjects.command(c.SERVICE, "update_key"), c.UpdateKey, h.update_key),
        (subjects.command(c.SERVICE, "rotate_key"), c.RotateKey, h.rotate_key),
        (subjects.command(c.SERVICE, "revoke_key"), c.RevokeKey, h.revoke),
        (subjects.command(c.SERVICE, "add_member"), c.AddMember, h.add_member),
        (subjects.command(c.SERVICE, "remove_member"), c.RemoveMember, h.remove_member),
        (subjects.query(c.SERVICE, "verify_key"), c.VerifyKey, h.verify),
        (subjects.query(c.SERVICE, "key_principal"), c.GetKeyPrincipal, h.key_principal),
        (subjects.query(c.SERVICE, "get_key"), c.GetKey, h.get_key),
        (subjects.query(c.SERVICE, "list_keys"), c.ListKeys, h.list_keys),
        (subjects.query(c.SERVICE, "get_member"), c.GetMember, h.get_member),
        (subjects.query(c.SERVICE, "list_members"), c.ListMembers, h.list_members),
    ]
    for subject, message_type, handler in endpoints:
        await bus.serve(subject, message_type, handler, queue=q)
