"""The identity service's decisions and store behaviour against every event-store backend.

Keys (create, restrict, rotate with overlap, expire, revoke), members, accounts and plans, tenant
and mode isolation, and what the public events say — with a clock the tests move.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from stratus_contracts import identity as c
from stratus_contracts import keys
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_identity import domain
from stratus_identity.bootstrap import open_identity
from stratus_identity.handlers import IdentityHandlers
from stratus_identity.publish import to_public

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice", request_id="req_1", ip="10.0.0.1")
ALICE_TEST = Caller(account_id="acct_alice", mode="test", key_id="key_alice_test")
BOB = Caller(account_id="acct_bob", mode="live", key_id="key_bob")
PRJ_A = "prj_" + "a" * 26
PRJ_B = "prj_" + "b" * 26


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def handlers(backend: str, clock: Clock) -> Iterator[IdentityHandlers]:
    store, view = open_identity()
    yield IdentityHandlers(store, view, relay=None, clock=clock)
    view.close()
    store.close()


def _code(fn, *args, **kwargs) -> str:
    with pytest.raises(DomainError) as info:
        fn(*args, **kwargs)
    return info.value.reply.code


def new_key(h: IdentityHandlers, caller: Caller = ALICE, **fields) -> tuple[str, c.KeyView]:
    secret = keys.generate(caller.mode)
    fields = {"name": "ci", "scopes": ("read",), **fields}
    view = h.create_key_sync(
        c.CreateKey(caller=caller, secret_hash=keys.hash_secret(secret), hint=keys.hint(secret), **fields)
    )
    return secret, view


def verify(h: IdentityHandlers, secret: str) -> c.Principal:
    return h.verify_sync(c.VerifyKey(secret_hash=keys.hash_secret(secret)))


def test_create_get_list_update_round_trip(handlers: IdentityHandlers, clock: Clock) -> None:
    secret, key = new_key(
        handlers,
        scopes=("read", "write"),
        project_ids=(PRJ_A,),
        environments=("production",),
        allowed_ips=("10.1.2.3/8", "2001:db8::1/32"),
    )
    assert key.id.startswith("key_") and key.mode == "live" and key.account == "acct_alice"
    assert key.hint == keys.hint(secret) and key.allowed_ips == ("10.0.0.0/8", "2001:db8::/32")
    assert key.secrets == (c.SecretView(hint=key.hint, created=clock.now),)
    clock.advance(30)
    got = handlers.get_key_sync(c.GetKey(caller=ALICE, key_id=key.id))
    assert got.age_seconds == 30 and msgspec.structs.replace(got, age_seconds=0) == key

    principal = verify(handlers, secret)
    assert (principal.key_id, principal.scopes, principal.project_ids) == (
        key.id,
        ("read", "write"),
        (PRJ_A,),
    )
    assert principal.environments == ("production",) and principal.allowed_ips == key.allowed_ips
    assert principal.expires_at is None and principal.secret_created == key.created

    updated = handlers.update_key_sync(
        c.UpdateKey(caller=ALICE, key_id=key.id, name="renamed", project_ids=None, allowed_ips=None)
    )
    assert (updated.name, updated.project_ids, updated.allowed_ips) == ("renamed", None, ())
    assert updated.environments == ("production",) and updated.version == 2
    # Nothing to change: no event, same version.
    same = handlers.update_key_sync(c.UpdateKey(caller=ALICE, key_id=key.id, name="renamed"))
    assert same.version == 2
    listed = handlers.list_keys_sync(c.ListKeys(caller=ALICE))
    assert [k.id for k in listed.data] == [key.id]


def test_rotation_overlap_then_key_expired(handlers: IdentityHandlers, clock: Clock) -> None:
    old, key = new_key(handlers)
    new = keys.generate("live")
    rotated = handlers.rotate_key_sync(
        c.RotateKey(
            caller=ALICE,
            key_id=key.id,
            secret_hash=keys.hash_secret(new),
            hint=keys.hint(new),
            overlap_seconds=3600,
        )
    )
    assert rotated.hint == keys.hint(new) and [s.hint for s in rotated.secrets] == [key.hint, rotated.hint]
    assert rotated.secrets[0].expires_at == clock.now + timedelta(hours=1)
    assert verify(handlers, old).expires_at == clock.now + timedelta(hours=1)
    assert verify(handlers, new).secret_created == clock.now and verify(handlers, new).expires_at is None
    clock.advance(3600)
    assert _code(verify, handlers, old) == "key_expired"
    assert verify(handlers, new).key_id == key.id
    # The expired secret is gone from the view; the key id still resolves.
    assert [s.hint for s in handlers.get_key_sync(c.GetKey(caller=ALICE, key_id=key.id)).secrets] == [
        rotated.hint
    ]

    newest = keys.generate("live")
    handlers.rotate_key_sync(
        c.RotateKey(
            caller=ALICE,
            key_id=key.id,
            secret_hash=keys.hash_secret(newest),
            hint=keys.hint(newest),
            overlap_seconds=0,
        )
    )
    assert _code(verify, handlers, new) == "key_expired"
    assert verify(handlers, newest).key_id == key.id
    too_long = c.RotateKey(
        caller=ALICE, key_id=key.id, secret_hash="x", hint="x", overlap_seconds=c.MAX_ROTATION_OVERLAP + 1
    )
    assert _code(handlers.rotate_key_sync, too_long) == "validation_failed"


def test_expiry_and_revocation(handlers: IdentityHandlers, clock: Clock) -> None:
    secret, key = new_key(handlers, expires_at=clock.now + timedelta(minutes=5))
    assert verify(handlers, secret).expires_at == clock.now + timedelta(minutes=5)
    handlers.update_key_sync(c.UpdateKey(caller=ALICE, key_id=key.id, expires_at=clock.now))
    assert _code(verify, handlers, secret) == "key_expired"
    assert _code(handlers.key_principal_sync, c.GetKeyPrincipal(key_id=key.id)) == "key_expired"
    handlers.update_key_sync(c.UpdateKey(caller=ALICE, key_id=key.id, expires_at=None))
    assert verify(handlers, secret).expires_at is None

    revoked = handlers.revoke_sync(c.RevokeKey(caller=ALICE, key_id=key.id))
    assert revoked.revoked == clock.now
    assert _code(verify, handlers, secret) == "api_key_revoked"
    assert (
        _code(handlers.update_key_sync, c.UpdateKey(caller=ALICE, key_id=key.id, name="x")) == "key_revoked"
    )
    # Revoking twice is a no-op that answers the final state.
    assert handlers.revoke_sync(c.RevokeKey(caller=ALICE, key_id=key.id)).version == revoked.version
    assert [k.id for k in handlers.list_keys_sync(c.ListKeys(caller=ALICE, revoked=False)).data] == []
    assert [k.id for k in handlers.list_keys_sync(c.ListKeys(caller=ALICE, revoked=True)).data] == [key.id]
    assert _code(verify, handlers, keys.generate("live")) == "invalid_api_key"


def test_other_accounts_and_modes_see_nothing(handlers: IdentityHandlers) -> None:
    _, key = new_key(handlers)
    for caller in (BOB, ALICE_TEST):
        assert _code(handlers.get_key_sync, c.GetKey(caller=caller, key_id=key.id)) == "key_not_found"
        for cmd in (
            c.UpdateKey(caller=caller, key_id=key.id, name="x"),
            c.RevokeKey(caller=caller, key_id=key.id),
            c.RotateKey(caller=caller, key_id=key.id, secret_hash="h", hint="h"),
        ):
            fn = {
                c.UpdateKey: handlers.update_key_sync,
                c.RevokeKey: handlers.revoke_sync,
                c.RotateKey: handlers.rotate_key_sync,
            }[type(cmd)]
            assert _code(fn, cmd) == "key_not_found"
        assert handlers.list_keys_sync(c.ListKeys(caller=caller)).data == []
    assert _code(handlers.get_key_sync, c.GetKey(caller=ALICE, key_id="key_nonsense")) == "key_not_found"


def test_a_key_never_grants_more_than_its_creator(handlers: IdentityHandlers) -> None:
    narrow = Caller(
        account_id="acct_alice",
        mode="live",
        key_id="key_narrow",
        scopes=("read", "admin"),
        project_ids=(PRJ_A,),
    )
    with pytest.raises(DomainError) as info:
        new_key(handlers, narrow, scopes=("read", "write"))
    assert info.value.reply.code == "scope_not_held" and "write" in info.value.reply.message
    assert _code(new_key, handlers, narrow, project_ids=(PRJ_B,)) == "scope_not_held"
    # Left out, restrictions default to the creator's own.
    _, inherited = new_key(handlers, narrow)
    assert inherited.project_ids == (PRJ_A,) and inherited.environments is None
    lifting = c.UpdateKey(caller=narrow, key_id=inherited.id, project_ids=None)
    assert _code(handlers.update_key_sync, lifting) == "scope_not_held"
    # A broader key cannot be changed, rotated or revoked by a narrower one.
    _, broad = new_key(handlers, scopes=("read", "write", "admin"))
    for fn, cmd in (
        (handlers.update_key_sync, c.UpdateKey(caller=narrow, key_id=broad.id, name="x")),
        (handlers.rotate_key_sync, c.RotateKey(caller=narrow, key_id=broad.id, secret_hash="h", hint="h")),
        (handlers.revoke_sync, c.RevokeKey(caller=narrow, key_id=broad.id)),
    ):
        assert _code(fn, cmd) == "scope_not_held"


def test_settings_are_validated(handlers: IdentityHandlers) -> None:
    with pytest.raises(DomainError) as info:
        new_key(handlers, allowed_ips=("10.0.0.0/8", "not-an-ip"), project_ids=("web",))
    assert info.value.reply.code == "validation_failed"
    assert {e.field for e in info.value.reply.errors} == {"allowed_ips[1]", "project_ids[0]"}
    assert _code(new_key, handlers, ALICE, scopes=()) == "validation_failed"
    assert _code(new_key, handlers, ALICE, name=" ") == "validation_failed"
    assert _code(new_key, handlers, ALICE, environments=("Prod!",)) == "validation_failed"


def test_members_bind_keys_and_removal_revokes_them(handlers: IdentityHandlers) -> None:
    member = handlers.add_member_sync(c.AddMember(caller=ALICE, email="Ada@Example.com", name="Ada"))
    assert member.id.startswith("mem_") and member.email == "ada@example.com"
    dup = c.AddMember(caller=ALICE, email="ADA@example.com")
    assert _code(handlers.add_member_sync, dup) == "member_email_taken"
    # Emails are unique per account and mode, not globally.
    handlers.add_member_sync(c.AddMember(caller=ALICE_TEST, email="ada@example.com"))
    handlers.add_member_sync(c.AddMember(caller=BOB, email="ada@example.com"))
    assert _code(handlers.add_member_sync, c.AddMember(caller=ALICE, email="nope")) == "validation_failed"

    assert handlers.get_member_sync(c.GetMember(caller=ALICE, member_id=member.id)) == member
    assert _code(handlers.get_member_sync, c.GetMember(caller=BOB, member_id=member.id)) == "member_not_found"
    assert _code(new_key, handlers, ALICE, member_id="mem_" + "c" * 26) == "member_not_found"

    secret, bound = new_key(handlers, member_id=member.id)
    assert bound.member_id == member.id and verify(handlers, secret).member_id == member.id
    as_member = Caller(account_id="acct_alice", mode="live", key_id=bound.id, member_id=member.id)
    # A member's key makes keys for that member only.
    _, own = new_key(handlers, as_member)
    assert own.member_id == member.id
    other = handlers.add_member_sync(c.AddMember(caller=ALICE, email="bo@example.com"))
    assert _code(new_key, handlers, as_member, member_id=other.id) == "scope_not_held"

    removed = handlers.remove_member_sync(c.RemoveMember(caller=ALICE, member_id=member.id))
    assert removed.deleted
    assert _code(verify, handlers, secret) == "api_key_revoked"
    assert handlers.get_key_sync(c.GetKey(caller=ALICE, key_id=own.id)).revoked is not None
    assert (
        _code(handlers.get_member_sync, c.GetMember(caller=ALICE, member_id=member.id)) == "member_not_found"
    )
    assert _code(new_key, handlers, ALICE, member_id=member.id) == "member_not_found"
    # The email is free again.
    handlers.add_member_sync(c.AddMember(caller=ALICE, email="ada@example.com"))


def test_lists_paginate_newest_first(handlers: IdentityHandlers, clock: Clock) -> None:
    made = []
    for i in range(5):
        made.append(new_key(handlers, name=f"k{i}")[1].id)
        handlers.add_member_sync(c.AddMember(caller=ALICE, email=f"m{i}@example.com"))
        clock.advance(1)
    seen, cursor = [], None
    while True:
        page = handlers.list_keys_sync(c.ListKeys(caller=ALICE, limit=2, cursor=cursor))
        seen += [k.id for k in page.data]
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == made[::-1]
    members = handlers.list_members_sync(c.ListMembers(caller=ALICE, limit=3))
    assert [m.email for m in members.data] == ["m4@example.com", "m3@example.com", "m2@example.com"]
    assert members.has_more
    assert (
        _code(handlers.list_keys_sync, c.ListKeys(caller=ALICE, cursor=members.next_cursor))
        == "invalid_cursor"
    )
    assert _code(handlers.list_keys_sync, c.ListKeys(caller=ALICE, cursor="garbage")) == "invalid_cursor"


def test_concurrent_adds_of_one_email_make_one_member(handlers: IdentityHandlers) -> None:
    results: list[str] = []
    barrier = threading.Barrier(6)

    def attempt() -> None:
        barrier.wait()
        try:
            handlers.add_member_sync(c.AddMember(caller=ALICE, email="race@example.com"))
            results.append("created")
        except DomainError as exc:
            results.append(exc.reply.code)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["created"] + ["member_email_taken"] * 5


def _new(mode: str) -> tuple[str, c.NewKey]:
    secret = keys.generate(mode)  # type: ignore[arg-type]
    return secret, c.NewKey(mode=mode, secret_hash=keys.hash_secret(secret), hint=keys.hint(secret))  # type: ignore[arg-type]


def test_accounts_and_plans(handlers: IdentityHandlers) -> None:
    (live, live_new), (test, test_new) = _new("live"), _new("test")
    made = handlers.create_account_sync(c.CreateAccount(name="tenant", plan="pro", keys=[live_new, test_new]))
    account = made.account
    assert account.id.startswith("acct_") and (account.name, account.plan) == ("tenant", "pro")
    assert verify(handlers, live).plan == "pro" and verify(handlers, test).mode == "test"
    assert verify(handlers, live).scopes == ("read", "write", "admin")
    changed = handlers.set_plan_sync(c.SetPlan(account_id=account.id, plan="free"))
    assert changed.plan == "free" and verify(handlers, test).plan == "free"
    assert handlers.set_plan_sync(c.SetPlan(account_id=account.id, plan="free")) == changed
    missing = c.SetPlan(account_id="acct_" + "z" * 26, plan="pro")
    assert _code(handlers.set_plan_sync, missing) == "account_not_found"
    # Every key of the account got a key.updated event, so gateways drop cached principals.
    public = _public(handlers)
    updated = {e.data["id"] for _, e in public if e.type == "key.updated"}
    assert updated == set(made.key_ids)
    assert [e.data["plan"] for _, e in public if e.type == "account.updated"] == ["free"]
    boot = handlers.bootstrap_sync(c.Bootstrap(keys=[_new("live")[1]], plan="internal"))
    assert handlers._plan(boot.account_id) == "internal"


def _public(handlers: IdentityHandlers) -> list:
    store = handlers.store
    notifications = store.recorder.select_notifications(0, 10_000)
    found = [to_public(store, store.mapper.to_domain_event(n)) for n in notifications]
    return [p for p in found if p is not None]


def test_public_events_carry_the_actor_and_never_a_hash(handlers: IdentityHandlers) -> None:
    secret, key = new_key(handlers)
    member = handlers.add_member_sync(c.AddMember(caller=ALICE, email="ev@example.com"))
    rotated = keys.generate("live")
    handlers.rotate_key_sync(
        c.RotateKey(caller=ALICE, key_id=key.id, secret_hash=keys.hash_secret(rotated), hint="h")
    )
    handlers.update_key_sync(c.UpdateKey(caller=ALICE, key_id=key.id, name="n2"))
    handlers.revoke_sync(c.RevokeKey(caller=ALICE, key_id=key.id))
    handlers.remove_member_sync(c.RemoveMember(caller=ALICE, member_id=member.id))
    public = _public(handlers)
    assert [e.type for _, e in public] == [
        "key.created",
        "member.created",
        "key.rotated",
        "key.updated",
        "key.revoked",
        "member.deleted",
    ]
    for subject, event in public:
        assert subject == f"evt.live.acct_alice.{event.type}"
        assert event.actor == ALICE.actor() and event.account == "acct_alice"
        assert "age_seconds" not in event.data and "last_used" not in event.data
        text = msgspec.json.encode(event).decode()
        for value in (secret, rotated, keys.hash_secret(secret), keys.hash_secret(rotated)):
            assert value not in text
    assert {e.data["id"] for _, e in public if e.type.startswith("key.")} == {key.id}


def test_events_written_before_this_version_still_decode() -> None:
    old = msgspec.json.encode(
        {
            "originator_id": "5f0c1c9e-55a4-4d57-9a3c-7d0e4b3c2a10",
            "originator_version": 1,
            "timestamp": "2026-01-01T00:00:00Z",
            "account": "acct_x",
            "mode": "live",
            "name": "admin",
            "hint": "sk_live_…abcd",
            "scopes": ["read", "write", "admin"],
            "secret_hash": "00",
        }
    )
    key = domain.project(None, [msgspec.json.decode(old, type=domain.KeyCreated)])
    assert key.project_ids is None and key.allowed_ips == () and key.secrets[0].hash == "00"
    account = msgspec.json.decode(
        b'{"originator_id": "5f0c1c9e-55a4-4d57-9a3c-7d0e4b3c2a10", "originator_version": 1, "name": "a"}',
        type=domain.AccountCreated,
    )
    assert account.plan == "free" and account.actor is None


def test_rebuilt_view_lists_the_same(handlers: IdentityHandlers) -> None:
    ids = [new_key(handlers, name=f"r{i}")[1].id for i in range(3)]
    handlers.add_member_sync(c.AddMember(caller=ALICE, email="r@example.com"))
    handlers.view.rebuild()
    assert {k.id for k in handlers.list_keys_sync(c.ListKeys(caller=ALICE)).data} == set(ids)
    assert [m.email for m in handlers.list_members_sync(c.ListMembers(caller=ALICE)).data] == [
        "r@example.com"
    ]
