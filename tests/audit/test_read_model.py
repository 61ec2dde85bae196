"""The audit read model's query: tenant and mode scoping, filters, newest-first cursor pagination."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stratus_audit.read_model import AuditReadModel, to_row
from stratus_contracts.audit import ListAuditEvents, is_audited
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Actor, Event
from stratus_contracts.ids import new_id

from .conftest import T0, event

ADMIN_A = Caller(account_id="acct_a", mode="live", key_id="key_admin")
ALICE = Actor(key_id="key_alice", member_id="mem_alice", ip="10.0.0.1", request_id="req_1")
BOB = Actor(key_id="key_bob", ip="10.0.0.2", request_id="req_2")


def store(model: AuditReadModel, *events: Event) -> None:
    model.write([to_row(e, seq) for seq, e in enumerate(events, start=model.position() + 1)], 0)


def ids(model: AuditReadModel, caller: Caller = ADMIN_A, **filters: object) -> list[str]:
    return [e.id for e in model.list(ListAuditEvents(caller=caller, limit=100, **filters)).data]


def test_which_events_are_audited() -> None:
    for kept in ["key.created", "key.revoked", "member.added", "account.created", "secret.revealed"]:
        assert is_audited(kept)
    assert is_audited("project.member_added") and is_audited("token.created")
    for dropped in ["project.created", "project.updated", "deployment.succeeded", "token.used"]:
        assert not is_audited(dropped)


def test_items_carry_action_actor_resource_and_time(models: dict[str, AuditReadModel]) -> None:
    key = event("key.created", actor=ALICE, data={"id": "key_new", "object": "api_key", "name": "ci"})
    store(models["live"], key)
    [item] = models["live"].list(ListAuditEvents(caller=ADMIN_A)).data
    assert (item.id, item.object, item.action, item.mode) == (key.id, "audit_event", "key.created", "live")
    assert item.created == T0
    assert (item.actor.key_id, item.actor.member_id, item.actor.ip) == ("key_alice", "mem_alice", "10.0.0.1")
    assert item.actor.request_id == "req_1" and item.actor.token_id is None
    assert (item.resource.type, item.resource.id) == ("api_key", "key_new")
    assert item.data["name"] == "ci"


def test_resource_without_an_id_is_the_most_specific_one(models: dict[str, AuditReadModel]) -> None:
    access = event(
        "project.member_added", data={"project_id": "prj_1", "member_id": "mem_1", "role": "viewer"}
    )
    store(models["live"], access, event("account.created", data={"id": "acct_a", "object": "account"}))
    [item] = models["live"].list(ListAuditEvents(caller=ADMIN_A, action="project.member_added")).data
    assert (item.resource.type, item.resource.id) == ("project_member", "mem_1")
    # The project filter finds its team-access changes through the ids the event refers to.
    assert ids(models["live"], resource="prj_1") == [access.id]
    assert ids(models["live"], resource="mem_1") == [access.id]


def test_secret_fields_never_reach_the_read_model(models: dict[str, AuditReadModel]) -> None:
    reveal = event(
        "secret.revealed",
        data={"id": "sec_1", "object": "secret", "name": "DB_URL", "value": "postgres://…", "secret": "x"},
    )
    store(models["live"], reveal)
    [item] = models["live"].list(ListAuditEvents(caller=ADMIN_A)).data
    assert item.data == {"id": "sec_1", "object": "secret", "name": "DB_URL"}
    raw = models["live"].query("SELECT event FROM audit_events")[0]["event"]
    assert b"postgres://" not in raw


def test_only_the_callers_account_and_mode(models: dict[str, AuditReadModel]) -> None:
    mine = event("key.created")
    other_account = event("key.created", account="acct_b")
    store(models["live"], mine, other_account)
    store(models["test"], event("key.created", mode="test"))
    assert ids(models["live"]) == [mine.id]
    assert ids(models["live"], Caller(account_id="acct_b", mode="live", key_id="key_b")) == [other_account.id]
    # The test-mode model is another file; even a misrouted query filters by mode.
    test_caller = Caller(account_id="acct_a", mode="test", key_id="key_t")
    assert ids(models["live"], test_caller) == []
    assert len(ids(models["test"], test_caller)) == 1


def test_filters(models: dict[str, AuditReadModel]) -> None:
    by_alice = event("key.created", actor=ALICE, minutes=1)
    revoked = event("key.revoked", actor=BOB, minutes=2)
    member = event("member.added", actor=ALICE, data={"id": "mem_2", "object": "member"}, minutes=3)
    access = event("project.member_added", actor=BOB, data={"project_id": "prj_1", "member_id": "mem_2"})
    store(models["live"], by_alice, revoked, member, access)
    assert ids(models["live"], actor="key_alice") == [member.id, by_alice.id]
    assert ids(models["live"], actor="mem_alice") == [member.id, by_alice.id]
    assert ids(models["live"], action="key.revoked") == [revoked.id]
    assert (
        ids(models["live"], action="key.") == ids(models["live"], action="key.*") == [revoked.id, by_alice.id]
    )
    assert ids(models["live"], action="project.member_*") == [access.id]
    assert ids(models["live"], action="key") == []  # an exact type, not a prefix
    assert ids(models["live"], resource="mem_2") == [member.id, access.id]
    window = {"created_gte": T0 + timedelta(minutes=1), "created_lt": T0 + timedelta(minutes=3)}
    assert ids(models["live"], **window) == [revoked.id, by_alice.id]
    assert ids(models["live"], actor="key_bob", **window) == [revoked.id]


def test_team_access_events_belong_to_their_project(models: dict[str, AuditReadModel]) -> None:
    # The shape projects publishes: the membership, its id the member's, `project` the project's.
    project, member = new_id("prj"), new_id("mem")
    added = event(
        "project.member_added",
        data={"id": member, "object": "project_member", "project": project, "role": "developer"},
    )
    store(models["live"], added)
    [item] = models["live"].list(ListAuditEvents(caller=ADMIN_A)).data
    assert (item.resource.type, item.resource.id) == ("project_member", member)
    assert ids(models["live"], resource=project) == ids(models["live"], resource=member) == [added.id]
    restricted = Caller(account_id="acct_a", mode="live", key_id="key_r", project_ids=(project,))
    assert ids(models["live"], restricted) == [added.id]


def test_restricted_keys_see_only_their_projects(models: dict[str, AuditReadModel]) -> None:
    access_1 = event("project.member_added", data={"project_id": "prj_1", "member_id": "mem_1"})
    access_2 = event("project.member_added", data={"project_id": "prj_2", "member_id": "mem_1"})
    store(models["live"], event("key.created"), access_1, access_2)
    restricted = Caller(account_id="acct_a", mode="live", key_id="key_r", project_ids=("prj_1",))
    assert ids(models["live"], restricted) == [access_1.id]


def test_cursor_pagination_newest_first(models: dict[str, AuditReadModel]) -> None:
    # Same-instant events too: the id breaks the tie, so no event is skipped or repeated.
    events = [event("key.created", minutes=i // 2) for i in range(7)]
    store(models["live"], *events)
    expected = [e.id for e in sorted(events, key=lambda e: (e.created, e.id), reverse=True)]
    seen, cursor = [], None
    while True:
        page = models["live"].list(ListAuditEvents(caller=ADMIN_A, limit=3, cursor=cursor))
        seen += [e.id for e in page.data]
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == expected


@pytest.mark.parametrize("cursor", ["garbage", "WyJjcmVhdGVkIiwiYSIsImIiXQ", ""])
def test_bad_cursors(models: dict[str, AuditReadModel], cursor: str) -> None:
    if not cursor:
        assert models["live"].list(ListAuditEvents(caller=ADMIN_A, cursor=cursor)).data == []
        return
    with pytest.raises(DomainError) as err:
        models["live"].list(ListAuditEvents(caller=ADMIN_A, cursor=cursor))
    assert err.value.reply.code == "invalid_cursor"


def test_a_redelivered_event_is_one_row(models: dict[str, AuditReadModel]) -> None:
    once = event("key.revoked")
    assert models["live"].write([to_row(once, 1)], 1) == 1
    assert models["live"].write([to_row(once, 2)], 2) == 0
    assert models["live"].count() == 1 and models["live"].position() == 2
