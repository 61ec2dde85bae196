"""The identity service's decisions and store behaviour against every event-store backend.

Keys (create, restrict, rotate with overlap, expire, revoke), members, accounts and plans, tenant
and mode isolation, and what the public events say — with a clock the tests move.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import msgspec
import pytest
from eventsourcing.utils import resolve_topic

from stratus_contracts import identity as c
from stratus_contracts import keys
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_identity import views
from stratus_identity.bootstrap import PARTITION
from stratus_identity.domain import accounts
from stratus_identity.domain import keys as key_domain
from stratus_kit import Local

from .support import Clock, Services, code, published

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice", request_id="req_1", ip="10.0.0.1")
ALICE_TEST = Caller(account_id="acct_alice", mode="test", key_id="key_alice_test")
BOB = Caller(account_id="acct_bob", mode="live", key_id="key_bob")
PRJ_A = "prj_" + "a" * 26
PRJ_B = "prj_" + "b" * 26


@pytest.fixture
def identity(services: Services, clock: Clock) -> Local:
    return services.identity(clock=clock)


def new_key(h: Local, caller: Caller = ALICE, **fields) -> tuple[str, c.KeyView]:
    secret = keys.generate(caller.mode)
    fields = {"name": "ci", "scopes": ("read",), **fields}
    view = h.call(
        c.CreateKey(caller=caller, secret_hash=keys.hash_secret(secret), hint=keys.hint(secret), **fields)
    )
    return secret, view


def verify(h: Local, secret: str) -> c.Principal:
    return h.call(c.VerifyKey(secret_hash=keys.hash_secret(secret)))


def test_create_get_list_update_round_trip(identity: Local, clock: Clock) -> None:
    secret, key = new_key(
        identity,
        scopes=("read", "write"),
        project_ids=(PRJ_A,),
        environments=("production",),
        allowed_ips=("10.1.2.3/8", "2001:db8::1/32"),
    )
    assert key.id.startswith("key_") and key.mode == "live" and key.account == "acct_alice"
    assert key.hint == keys.hint(secret) and key.allowed_ips == ("10.0.0.0/8", "2001:db8::/32")
    assert key.secrets == (c.SecretView(hint=key.hint, created=clock.now),)
    clock.advance(30)
    got = identity.call(c.GetKey(caller=ALICE, key_id=key.id))
    assert got.age_seconds == 30 and msgspec.structs.replace(got, age_seconds=0) == key

    principal = verify(identity, secret)
    assert (principal.key_id, principal.scopes, principal.project_ids) == (
        key.id,
        ("read", "write"),
        (PRJ_A,),
    )
    assert principal.environments == ("production",) and principal.allowed_ips == key.allowed_ips
    assert principal.expires_at is None and principal.secret_created == key.created

    updated = identity.call(
        c.UpdateKey(caller=ALICE, key_id=key.id, name="renamed", project_ids=None, allowed_ips=None)
    )
    assert (updated.name, updated.project_ids, updated.allowed_ips) == ("renamed", None, ())
    assert updated.environments == ("production",) and updated.version == 2
    # Nothing to change: no event, same version.
    same = identity.call(c.UpdateKey(caller=ALICE, key_id=key.id, name="renamed"))
    assert same.version == 2
    listed = identity.call(c.ListKeys(caller=ALICE))
    assert [k.id for k in listed.data] == [key.id]


def test_rotation_overlap_then_key_expired(identity: Local, clock: Clock) -> None:
    old, key = new_key(identity)
    new = keys.generate("live")
    rotated = identity.call(
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
    assert verify(identity, old).expires_at == clock.now + timedelta(hours=1)
    assert verify(identity, new).secret_created == clock.now and verify(identity, new).expires_at is None
    clock.advance(3600)
    assert code(verify, identity, old) == "key_expired"
    assert verify(identity, new).key_id == key.id
    # The expired secret is gone from the view; the key id still resolves.
    assert [s.hint for s in identity.call(c.GetKey(caller=ALICE, key_id=key.id)).secrets] == [rotated.hint]

    newest = keys.generate("live")
    identity.call(
        c.RotateKey(
            caller=ALICE,
            key_id=key.id,
            secret_hash=keys.hash_secret(newest),
            hint=keys.hint(newest),
            overlap_seconds=0,
        )
    )
    assert code(verify, identity, new) == "key_expired"
    assert verify(identity, newest).key_id == key.id
    too_long = c.RotateKey(
        caller=ALICE, key_id=key.id, secret_hash="x", hint="x", overlap_seconds=c.MAX_ROTATION_OVERLAP + 1
    )
    assert code(identity.call, too_long) == "validation_failed"


def test_expiry_and_revocation(identity: Local, clock: Clock) -> None:
    secret, key = new_key(identity, expires_at=clock.now + timedelta(minutes=5))
    assert verify(identity, secret).expires_at == clock.now + timedelta(minutes=5)
    identity.call(c.UpdateKey(caller=ALICE, key_id=key.id, expires_at=clock.now))
    assert code(verify, identity, secret) == "key_expired"
    assert code(identity.call, c.GetKeyPrincipal(key_id=key.id)) == "key_expired"
    identity.call(c.UpdateKey(caller=ALICE, key_id=key.id, expires_at=None))
    assert verify(identity, secret).expires_at is None

    revoked = identity.call(c.RevokeKey(caller=ALICE, key_id=key.id))
    assert revoked.revoked == clock.now
    assert code(verify, identity, secret) == "api_key_revoked"
    assert code(identity.call, c.UpdateKey(caller=ALICE, key_id=key.id, name="x")) == "key_revoked"
    # Revoking twice is a no-op that answers the final state.
    assert identity.call(c.RevokeKey(caller=ALICE, key_id=key.id)).version == revoked.version
    assert [k.id for k in identity.call(c.ListKeys(caller=ALICE, revoked=False)).data] == []
    assert [k.id for k in identity.call(c.ListKeys(caller=ALICE, revoked=True)).data] == [key.id]
    assert code(verify, identity, keys.generate("live")) == "invalid_api_key"


def test_other_accounts_and_modes_see_nothing(identity: Local) -> None:
    _, key = new_key(identity)
    for caller in (BOB, ALICE_TEST):
        assert code(identity.call, c.GetKey(caller=caller, key_id=key.id)) == "key_not_found"
        for cmd in (
            c.UpdateKey(caller=caller, key_id=key.id, name="x"),
            c.RevokeKey(caller=caller, key_id=key.id),
            c.RotateKey(caller=caller, key_id=key.id, secret_hash="h", hint="h"),
        ):
            assert code(identity.call, cmd) == "key_not_found"
        assert identity.call(c.ListKeys(caller=caller)).data == []
    assert code(identity.call, c.GetKey(caller=ALICE, key_id="key_nonsense")) == "key_not_found"


def test_a_key_never_grants_more_than_its_creator(identity: Local) -> None:
    narrow = Caller(
        account_id="acct_alice",
        mode="live",
        key_id="key_narrow",
        scopes=("read", "admin"),
        project_ids=(PRJ_A,),
    )
    with pytest.raises(DomainError) as info:
        new_key(identity, narrow, scopes=("read", "write"))
    assert info.value.reply.code == "scope_not_held" and "write" in info.value.reply.message
    assert code(new_key, identity, narrow, project_ids=(PRJ_B,)) == "scope_not_held"
    # Left out, restrictions default to the creator's own.
    _, inherited = new_key(identity, narrow)
    assert inherited.project_ids == (PRJ_A,) and inherited.environments is None
    lifting = c.UpdateKey(caller=narrow, key_id=inherited.id, project_ids=None)
    assert code(identity.call, lifting) == "scope_not_held"
    # A broader key cannot be changed, rotated or revoked by a narrower one.
    _, broad = new_key(identity, scopes=("read", "write", "admin"))
    for fn, cmd in (
        (identity.call, c.UpdateKey(caller=narrow, key_id=broad.id, name="x")),
        (identity.call, c.RotateKey(caller=narrow, key_id=broad.id, secret_hash="h", hint="h")),
        (identity.call, c.RevokeKey(caller=narrow, key_id=broad.id)),
    ):
        assert code(fn, cmd) == "scope_not_held"


def test_settings_are_validated(identity: Local) -> None:
    with pytest.raises(DomainError) as info:
        new_key(identity, allowed_ips=("10.0.0.0/8", "not-an-ip"), project_ids=("web",))
    assert info.value.reply.code == "validation_failed"
    assert {e.field for e in info.value.reply.errors} == {"allowed_ips[1]", "project_ids[0]"}
    assert code(new_key, identity, ALICE, scopes=()) == "validation_failed"
    assert code(new_key, identity, ALICE, name=" ") == "validation_failed"
    assert code(new_key, identity, ALICE, environments=("Prod!",)) == "validation_failed"


def test_members_bind_keys_and_removal_revokes_them(identity: Local) -> None:
    member = identity.call(c.AddMember(caller=ALICE, email="Ada@Example.com", name="Ada"))
    assert member.id.startswith("mem_") and member.email == "ada@example.com"
    dup = c.AddMember(caller=ALICE, email="ADA@example.com")
    assert code(identity.call, dup) == "member_email_taken"
    # Emails are unique per account and mode, not globally.
    identity.call(c.AddMember(caller=ALICE_TEST, email="ada@example.com"))
    identity.call(c.AddMember(caller=BOB, email="ada@example.com"))
    assert code(identity.call, c.AddMember(caller=ALICE, email="nope")) == "validation_failed"

    assert identity.call(c.GetMember(caller=ALICE, member_id=member.id)) == member
    assert code(identity.call, c.GetMember(caller=BOB, member_id=member.id)) == "member_not_found"
    assert code(new_key, identity, ALICE, member_id="mem_" + "c" * 26) == "member_not_found"

    secret, bound = new_key(identity, member_id=member.id)
    assert bound.member_id == member.id and verify(identity, secret).member_id == member.id
    as_member = Caller(account_id="acct_alice", mode="live", key_id=bound.id, member_id=member.id)
    # A member's key makes keys for that member only.
    _, own = new_key(identity, as_member)
    assert own.member_id == member.id
    other = identity.call(c.AddMember(caller=ALICE, email="bo@example.com"))
    assert code(new_key, identity, as_member, member_id=other.id) == "scope_not_held"

    removed = identity.call(c.RemoveMember(caller=ALICE, member_id=member.id))
    assert removed.deleted
    assert code(verify, identity, secret) == "api_key_revoked"
    assert identity.call(c.GetKey(caller=ALICE, key_id=own.id)).revoked is not None
    assert code(identity.call, c.GetMember(caller=ALICE, member_id=member.id)) == "member_not_found"
    assert code(new_key, identity, ALICE, member_id=member.id) == "member_not_found"
    # The email is free again.
    identity.call(c.AddMember(caller=ALICE, email="ada@example.com"))


def test_lists_paginate_newest_first(identity: Local, clock: Clock) -> None:
    made = []
    for i in range(5):
        made.append(new_key(identity, name=f"k{i}")[1].id)
        identity.call(c.AddMember(caller=ALICE, email=f"m{i}@example.com"))
        clock.advance(1)
    seen, cursor = [], None
    while True:
        page = identity.call(c.ListKeys(caller=ALICE, limit=2, cursor=cursor))
        seen += [k.id for k in page.data]
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == made[::-1]
    members = identity.call(c.ListMembers(caller=ALICE, limit=3))
    assert [m.email for m in members.data] == ["m4@example.com", "m3@example.com", "m2@example.com"]
    assert members.has_more
    assert code(identity.call, c.ListKeys(caller=ALICE, cursor=members.next_cursor)) == "invalid_cursor"
    assert code(identity.call, c.ListKeys(caller=ALICE, cursor="garbage")) == "invalid_cursor"


def test_concurrent_adds_of_one_email_make_one_member(services: Services, identity: Local) -> None:
    # Two replicas: adds race in one writer's batch and between the replicas' commits.
    replicas = (identity, services.identity())
    results: list[str] = []
    barrier = threading.Barrier(6)

    def attempt(index: int) -> None:
        barrier.wait()
        try:
            replicas[index % 2].call(c.AddMember(caller=ALICE, email="race@example.com"))
            results.append("created")
        except DomainError as exc:
            results.append(exc.reply.code)

    threads = [threading.Thread(target=attempt, args=(index,)) for index in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["created"] + ["member_email_taken"] * 5


def _new(mode: str) -> tuple[str, c.NewKey]:
    secret = keys.generate(mode)  # type: ignore[arg-type]
    return secret, c.NewKey(mode=mode, secret_hash=keys.hash_secret(secret), hint=keys.hint(secret))  # type: ignore[arg-type]


def test_accounts_and_plans(identity: Local) -> None:
    (live, live_new), (test, test_new) = _new("live"), _new("test")
    made = identity.call(c.CreateAccount(name="tenant", plan="pro", keys=[live_new, test_new]))
    account = made.account
    assert account.id.startswith("acct_") and (account.name, account.plan) == ("tenant", "pro")
    assert verify(identity, live).plan == "pro" and verify(identity, test).mode == "test"
    assert verify(identity, live).scopes == ("read", "write", "admin")
    changed = identity.call(c.SetPlan(account_id=account.id, plan="free"))
    assert changed.plan == "free" and verify(identity, test).plan == "free"
    assert identity.call(c.SetPlan(account_id=account.id, plan="free")) == changed
    missing = c.SetPlan(account_id="acct_" + "z" * 26, plan="pro")
    assert code(identity.call, missing) == "account_not_found"
    # Every key of the account got a key.updated event, so gateways drop cached principals.
    public = _public(identity)
    updated = {e.data.id for _, e in public if e.type == "key.updated"}
    assert updated == set(made.key_ids)
    assert [e.data.plan for _, e in public if e.type == "account.updated"] == ["free"]
    booted, boot_key = _new("live")
    boot = identity.call(c.Bootstrap(keys=[boot_key], plan="internal"))
    assert boot.created and verify(identity, booted).plan == "internal"
    assert verify(identity, booted).account_id == boot.account_id


def _public(identity: Local) -> list:
    return published(identity.partitions[PARTITION], views.PUBLISHER)


def test_public_events_carry_the_actor_and_never_a_hash(identity: Local) -> None:
    secret, key = new_key(identity)
    member = identity.call(c.AddMember(caller=ALICE, email="ev@example.com"))
    rotated = keys.generate("live")
    identity.call(c.RotateKey(caller=ALICE, key_id=key.id, secret_hash=keys.hash_secret(rotated), hint="h"))
    identity.call(c.UpdateKey(caller=ALICE, key_id=key.id, name="n2"))
    identity.call(c.RevokeKey(caller=ALICE, key_id=key.id))
    identity.call(c.RemoveMember(caller=ALICE, member_id=member.id))
    public = _public(identity)
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
        data = msgspec.to_builtins(event.data)
        assert "age_seconds" not in data and "last_used" not in data
        text = msgspec.json.encode(event).decode()
        for value in (secret, rotated, keys.hash_secret(secret), keys.hash_secret(rotated)):
            assert value not in text
    assert {e.data.id for _, e in public if e.type.startswith("key.")} == {key.id}


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
    # Stored under the topics of the single module identity's domain was then.
    assert resolve_topic("stratus_identity.domain:KeyCreated") is key_domain.KeyCreated
    assert resolve_topic("stratus_identity.domain:AccountCreated") is accounts.AccountCreated
    key = key_domain.mutate(msgspec.json.decode(old, type=key_domain.KeyCreated), None)
    assert key.project_ids is None and key.allowed_ips == () and key.secrets[0].hash == "00"
    account = msgspec.json.decode(
        b'{"originator_id": "5f0c1c9e-55a4-4d57-9a3c-7d0e4b3c2a10", "originator_version": 1, "name": "a"}',
        type=accounts.AccountCreated,
    )
    assert account.plan == "free" and account.actor is None


def test_rebuilt_read_model_lists_the_same(identity: Local) -> None:
    ids = [new_key(identity, name=f"r{i}")[1].id for i in range(3)]
    identity.call(c.AddMember(caller=ALICE, email="r@example.com"))
    identity.partitions[PARTITION].rebuild_read_models()
    assert {k.id for k in identity.call(c.ListKeys(caller=ALICE)).data} == set(ids)
    assert [m.email for m in identity.call(c.ListMembers(caller=ALICE)).data] == ["r@example.com"]
