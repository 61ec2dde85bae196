"""Identity handlers: `(message, state, now) → (events, reply)`; the kit saves.

Every API command carries the gateway's `Caller`; its account and mode scope every lookup, so a
key or member of another account or mode is simply "not found". Operator commands (bootstrap,
accounts) come from the `stratus` command line and carry no caller.
"""

from __future__ import annotations

from datetime import datetime

from msgspec import UNSET
from opentelemetry import trace

from stratus_contracts import identity as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.ids import decode_id, encode_id, new_uuid
from stratus_eventstore.preconditions import require_version
from stratus_identity import read_model
from stratus_identity.domain import accounts, keys, members
from stratus_identity.views import account_view, key_view, member_view, principal_of
from stratus_kit import Decision, Handler, State

_tracer = trace.get_tracer("stratus.identity")


def _key(state: State, caller: Caller, key_id: str) -> keys.ApiKey:
    """The caller's key in the caller's mode, or 404: another tenant's key is indistinguishable."""
    key = state.get(decode_id("key", key_id))
    if not isinstance(key, keys.ApiKey) or key.account != caller.account_id or key.mode != caller.mode:
        raise DomainError("key_not_found", f"No API key {key_id!r} in this account.")
    return key


def _member(state: State, caller: Caller, member_id: str) -> members.Member:
    member = state.get(decode_id("mem", member_id))
    if (
        not isinstance(member, members.Member)
        or member.account != caller.account_id
        or member.mode != caller.mode
        or member.removed is not None
    ):
        raise DomainError("member_not_found", f"No member {member_id!r} in this account.")
    return member


def _plan(state: State, account: str) -> str:
    found = state.get(decode_id("acct", account))
    return found.plan if isinstance(found, accounts.Account) else "free"


def _new_keys(account: str, specs: list[c.NewKey], now: datetime) -> tuple[list, list[str]]:
    events, key_ids = [], []
    for spec in specs:
        key_id = new_uuid()
        key_ids.append(encode_id("key", key_id))
        events += keys.create(key_id, account, spec, now)
    return events, key_ids


# -- accounts (operator) ------------------------------------------------------------------------


def bootstrap(cmd: c.Bootstrap, state: State, now: datetime) -> Decision:
    marker = state.get(accounts.BOOTSTRAP_ID)
    if marker is not None:
        return (), c.BootstrapResult(account_id=encode_id("acct", marker.account_id), created=False)
    account_id = new_uuid()
    account = encode_id("acct", account_id)
    made, key_ids = _new_keys(account, cmd.keys, now)
    # One save: the account, its keys and the marker commit together or not at all.
    events = [*accounts.bootstrap(None, account_id, now, cmd.plan), *made]
    return events, c.BootstrapResult(account_id=account, created=True, key_ids=key_ids)


def ensure_key(cmd: c.EnsureKey, state: State, now: datetime) -> Decision:
    marker = state.get(accounts.BOOTSTRAP_ID)
    if marker is None:
        raise DomainError("account_not_found", "Bootstrap the stack before ensuring keys.")
    account = encode_id("acct", marker.account_id)
    index = state.get(keys.key_hash_index_id(cmd.key.secret_hash))
    if index is not None:
        # A revoked admin key named by STRATUS_ADMIN_KEY stays revoked: revocation wins.
        return (), c.BootstrapResult(
            account_id=account, created=False, key_ids=[encode_id("key", index.key_id)]
        )
    events, key_ids = _new_keys(account, [cmd.key], now)
    return events, c.BootstrapResult(account_id=account, created=True, key_ids=key_ids)


def create_account(cmd: c.CreateAccount, state: State, now: datetime) -> Decision:
    account_id = new_uuid()
    created = accounts.create(account_id, cmd.name, cmd.plan, now)
    made, key_ids = _new_keys(encode_id("acct", account_id), cmd.keys, now)
    reply = c.AccountCreatedResult(account=account_view(accounts.mutate(created[0], None)), key_ids=key_ids)
    return [*created, *made], reply


def set_plan(cmd: c.SetPlan, state: State, now: datetime) -> Decision:
    account = state.get(decode_id("acct", cmd.account_id))
    if not isinstance(account, accounts.Account):
        raise DomainError("account_not_found", f"No account {cmd.account_id!r}.")
    events = accounts.set_plan(account, cmd.plan, now)
    if events:
        rows = state.read_model("directory").query(read_model.ACCOUNT_KEYS_SQL, (cmd.account_id,))
        events += keys.plan_changed([state.get(decode_id("key", r["id"])) for r in rows], cmd.plan, now)
    after = accounts.mutate(events[0], account) if events else account
    return events, account_view(after)


# -- verification (the gateway's auth path) ---------------------------------------------------


def verify_key(q: c.VerifyKey, state: State, now: datetime) -> Decision:
    with _tracer.start_as_current_span("store.verify_key"):
        index = state.get(keys.key_hash_index_id(q.secret_hash))
        key = state.get(index.key_id) if index else None
        key, secret = keys.verify(key, q.secret_hash, now)
        return (), principal_of(key, secret, _plan(state, key.account))


def get_key_principal(q: c.GetKeyPrincipal, state: State, now: datetime) -> Decision:
    key, secret = keys.verify(state.get(decode_id("key", q.key_id)), None, now)
    return (), principal_of(key, secret, _plan(state, key.account))


# -- keys -----------------------------------------------------------------------------------------


def create_key(cmd: c.CreateKey, state: State, now: datetime) -> Decision:
    caller = cmd.caller
    asked = keys.KeySettings(
        name=cmd.name,
        scopes=cmd.scopes,
        project_ids=cmd.project_ids,
        environments=cmd.environments,
        allowed_ips=cmd.allowed_ips,
        expires_at=cmd.expires_at,
    )
    settings = keys.validate(keys.inherit(caller, asked))
    member_id = cmd.member_id or caller.member_id
    keys.check_within(caller, settings, member_id)
    member = _member(state, caller, member_id) if member_id else None
    spec = c.NewKey(mode=caller.mode, secret_hash=cmd.secret_hash, hint=cmd.hint)
    key_id = new_uuid()
    events = keys.create(
        key_id,
        caller.account_id,
        spec,
        now,
        settings=settings,
        member_id=encode_id("mem", member.id) if member else None,
        actor=caller.actor(),
    )
    if member is not None:
        events.append(members.bind_key(member, key_id, now, caller.actor()))
    return events, key_view(keys.mutate(events[0], None), now)


def list_keys(q: c.ListKeys, state: State, now: datetime) -> Decision:
    sql, params = read_model.page_sql(
        "keys", q.caller.account_id, q.caller.mode, q.limit, q.cursor, q.revoked
    )
    rows = state.read_model("directory").query(sql, params)
    ids, has_more, cursor = read_model.page_ids("keys", rows, q.limit)
    views = [key_view(_key(state, q.caller, key_id), now) for key_id in ids]
    return (), c.KeyPage(data=views, has_more=has_more, next_cursor=cursor)


def get_key(q: c.GetKey, state: State, now: datetime) -> Decision:
    return (), key_view(_key(state, q.caller, q.key_id), now)


def update_key(cmd: c.UpdateKey, state: State, now: datetime) -> Decision:
    caller = cmd.caller
    key = _key(state, caller, cmd.key_id)
    keys.manageable(caller, key)
    require_version(key.version, cmd.expected_version, "This key")
    old = key.settings
    asked = keys.KeySettings(
        name=old.name if cmd.name is None else cmd.name,
        scopes=old.scopes if cmd.scopes is None else cmd.scopes,
        project_ids=old.project_ids if cmd.project_ids is UNSET else cmd.project_ids,
        environments=old.environments if cmd.environments is UNSET else cmd.environments,
        allowed_ips=old.allowed_ips if cmd.allowed_ips is UNSET else (cmd.allowed_ips or ()),
        expires_at=old.expires_at if cmd.expires_at is UNSET else cmd.expires_at,
    )
    settings = keys.validate(asked)
    keys.check_within(caller, settings, key.member_id)
    events = keys.update(key, settings, now, caller.actor())
    return events, key_view(_after(key, events), now)


def rotate_key(cmd: c.RotateKey, state: State, now: datetime) -> Decision:
    caller = cmd.caller
    key = _key(state, caller, cmd.key_id)
    keys.manageable(caller, key)
    require_version(key.version, cmd.expected_version, "This key")
    events = keys.rotate(key, cmd.secret_hash, cmd.hint, cmd.overlap_seconds, now, caller.actor())
    return events, key_view(_after(key, events[:1]), now)


def revoke_key(cmd: c.RevokeKey, state: State, now: datetime) -> Decision:
    if cmd.caller is not None:
        key = _key(state, cmd.caller, cmd.key_id)
        keys.manageable(cmd.caller, key)
    else:
        key = state.get(decode_id("key", cmd.key_id))
        if not isinstance(key, keys.ApiKey) or key.account != cmd.account_id:
            raise DomainError("key_not_found", f"No API key {cmd.key_id!r} in this account.")
    require_version(key.version, cmd.expected_version, "This key")
    events = keys.revoke(key, now, cmd.caller.actor() if cmd.caller else None)
    return events, key_view(_after(key, events), now)


def _after(key: keys.ApiKey, events: list) -> keys.ApiKey:
    for event in events:
        key = keys.mutate(event, key)  # type: ignore[assignment]
    return key


# -- members --------------------------------------------------------------------------------------


def add_member(cmd: c.AddMember, state: State, now: datetime) -> Decision:
    caller = cmd.caller
    email = members.normalise_email(cmd.email)
    index = state.get(members.email_index_id(caller.account_id, caller.mode, email))
    member_id = new_uuid()
    events = members.add(
        member_id, caller.account_id, caller.mode, email, cmd.name, index, now, caller.actor()
    )
    return events, member_view(members.mutate(events[0], None))


def get_member(q: c.GetMember, state: State, now: datetime) -> Decision:
    return (), member_view(_member(state, q.caller, q.member_id))


def list_members(q: c.ListMembers, state: State, now: datetime) -> Decision:
    sql, params = read_model.page_sql("members", q.caller.account_id, q.caller.mode, q.limit, q.cursor)
    rows = state.read_model("directory").query(sql, params)
    ids, has_more, cursor = read_model.page_ids("members", rows, q.limit)
    views = [member_view(_member(state, q.caller, member_id)) for member_id in ids]
    return (), c.MemberPage(data=views, has_more=has_more, next_cursor=cursor)


def remove_member(cmd: c.RemoveMember, state: State, now: datetime) -> Decision:
    """The member goes, its email is free again, and every key bound to it is revoked — in one save."""
    caller = cmd.caller
    member = _member(state, caller, cmd.member_id)
    require_version(member.version, cmd.expected_version, "This member")
    index = state.get(members.email_index_id(member.account, member.mode, member.email))
    events = members.remove(member, index, now, caller.actor())
    for key_id in member.key_ids:
        events += keys.revoke(state.get(key_id), now, caller.actor(), reason="member_removed")
    return events, member_view(members.mutate(events[0], member))


HANDLERS: dict[type, Handler] = {
    c.Bootstrap: bootstrap,
    c.EnsureKey: ensure_key,
    c.CreateAccount: create_account,
    c.SetPlan: set_plan,
    c.VerifyKey: verify_key,
    c.GetKeyPrincipal: get_key_principal,
    c.CreateKey: create_key,
    c.ListKeys: list_keys,
    c.GetKey: get_key,
    c.UpdateKey: update_key,
    c.RotateKey: rotate_key,
    c.RevokeKey: revoke_key,
    c.AddMember: add_member,
    c.GetMember: get_member,
    c.ListMembers: list_members,
    c.RemoveMember: remove_member,
}
