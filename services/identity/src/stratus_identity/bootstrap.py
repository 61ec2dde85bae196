"""Composition root of the identity service: one store (accounts span modes), endpoints, relay."""

from __future__ import annotations

import asyncio
import contextlib

from stratus_bus import Bus
from stratus_bus.config import data_dir, relay_enabled
from stratus_bus.runtime import spawn
from stratus_contracts import identity as c
from stratus_contracts import subjects
from stratus_eventstore.relay import Relay
from stratus_eventstore.store import open_store
from stratus_identity.handlers import IdentityHandlers
from stratus_identity.publish import to_public


async def setup(bus: Bus, stack: contextlib.AsyncExitStack) -> None:
    store = await asyncio.to_thread(open_store, c.SERVICE, "main", data_dir())
    stack.callback(store.close)
    relay = Relay(store, bus.js, to_public) if relay_enabled() else None
    if relay is not None:
        spawn(stack, relay.run(), name="relay")

    h = IdentityHandlers(store, relay)
    q = subjects.queue_group(c.SERVICE)
    await bus.serve(subjects.command(c.SERVICE, "bootstrap"), c.Bootstrap, h.bootstrap, queue=q)
    await bus.serve(subjects.command(c.SERVICE, "ensure_key"), c.EnsureKey, h.ensure_key, queue=q)
    await bus.serve(subjects.command(c.SERVICE, "revoke_key"), c.RevokeKey, h.revoke, queue=q)
    await bus.serve(subjects.query(c.SERVICE, "verify_key"), c.VerifyKey, h.verify, queue=q)
    await bus.serve(subjects.query(c.SERVICE, "key_principal"), c.GetKeyPrincipal, h.key_principal, queue=q)
