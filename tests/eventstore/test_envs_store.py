"""Environments and their variables in the projects store, on every backend (SQLite, PostgreSQL):
default environments, names, versions, limits, redaction and reveal, access, encryption at rest
and master-key rotation."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import msgspec
import psycopg
import pytest

from stratus_contracts import envs as c
from stratus_contracts import projects as pc
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.ids import encode_id, new_uuid
from stratus_eventstore.model import utcnow
from stratus_kit import Local
from stratus_projects import domain as projects_domain
from stratus_projects.environments import crypto, views
from stratus_projects.environments import domain as d

from ..conftest import POSTGRES_DSN
from .support import Services, code, published

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")
BOB = Caller(account_id="acct_bob", mode="live", key_id="key_bob")
READER = msgspec.structs.replace(ALICE, key_id="key_reader", scopes=("read", "write"))


@pytest.fixture
def master() -> bytes:
    return os.urandom(32)


@pytest.fixture
def envs(services: Services, master: bytes) -> Local:
    """The projects service (projects and their environments) with one master key."""
    return services.projects(crypto.Keyring(current=master))


def _project(envs: Local, caller: Caller = ALICE, name: str = "web") -> str:
    return envs.call(pc.CreateProject(caller=caller, name=name)).id


def _envs(envs: Local, project_id: str, caller: Caller = ALICE) -> dict[str, c.Environment]:
    return {e.name: e for e in envs.call(c.ListEnvironments(caller=caller, project_id=project_id)).data}


def _set(envs: Local, env_id: str, caller: Caller = ALICE, **values: str) -> c.ConfigVersion:
    changes = [c.VarChange(key=k, value=v) for k, v in values.items()]
    return envs.call(c.ChangeVars(caller=caller, env_id=env_id, set=changes))


def _values(envs: Local, env_id: str, caller: Caller = ALICE) -> dict[str, str | None]:
    page = envs.call(c.ListEnvVars(caller=caller, env_id=env_id, limit=100, reveal=True))
    return {v.key: v.value for v in page.data}


def _head(envs: Local) -> int:
    return envs.partitions["live"].store.recorder.max_notification_id() or 0


# --- environments ------------------------------------------------------------------------------


def test_a_new_project_starts_with_production_and_staging(envs: Local) -> None:
    project_id = _project(envs)
    listed = envs.call(c.ListEnvironments(caller=ALICE, project_id=project_id)).data
    assert [e.name for e in listed] == ["production", "staging"]
    assert all(e.config_version == 1 and e.version == 1 and e.project_id == project_id for e in listed)
    assert envs.call(c.GetEnvironment(caller=ALICE, env_id=listed[0].id)) == listed[0]


def _project_from_before_environments(envs: Local, name: str) -> str:
    """A project as it was recorded before environments existed: its events alone, no defaults."""
    project_id = new_uuid()
    events = projects_domain.create(project_id, ALICE.account_id, name, "", ALICE, None, utcnow())
    envs.partitions["live"].store.events.put(events)
    return encode_id("prj", project_id)


def test_a_project_made_before_environments_gets_them_on_first_access(envs: Local) -> None:
    first = _project_from_before_environments(envs, "old")
    assert list(_envs(envs, first)) == ["production", "staging"]
    assert list(_envs(envs, first)) == ["production", "staging"]  # once only
    second = _project_from_before_environments(envs, "old2")
    made = envs.call(c.CreateEnvironment(caller=ALICE, project_id=second, name="preview-1"))
    assert list(_envs(envs, second)) == ["production", "staging", "preview-1"] and made.name == "preview-1"
    third = _project_from_before_environments(envs, "old3")
    create = c.CreateEnvironment(caller=ALICE, project_id=third, name="staging")
    assert code(envs.call, create) == "environment_name_taken"


def test_environment_round_trip_and_names_unique_per_project(envs: Local) -> None:
    web, api = _project(envs), _project(envs, name="api")
    made = envs.call(
        c.CreateEnvironment(caller=ALICE, project_id=web, name="preview-1", branch="feat", auto_deploy=True)
    )
    assert (made.name, made.branch, made.auto_deploy, made.version, made.config_version) == (
        "preview-1",
        "feat",
        True,
        1,
        1,
    )
    taken = c.CreateEnvironment(caller=ALICE, project_id=web, name="preview-1")
    assert code(envs.call, taken) == "environment_name_taken"
    envs.call(c.CreateEnvironment(caller=ALICE, project_id=api, name="preview-1"))  # other project
    replaced = envs.call(
        c.ReplaceEnvironment(caller=ALICE, env_id=made.id, name="preview-2", description="pr 2")
    )
    assert (replaced.name, replaced.description, replaced.branch, replaced.auto_deploy, replaced.version) == (
        "preview-2",
        "pr 2",
        None,
        False,
        2,
    )
    same = c.ReplaceEnvironment(caller=ALICE, env_id=made.id, name="preview-2", description="pr 2")
    assert envs.call(same).version == 2  # nothing changed, nothing recorded
    rename = c.ReplaceEnvironment(caller=ALICE, env_id=made.id, name="staging")
    assert code(envs.call, rename) == "environment_name_taken"
    envs.call(c.CreateEnvironment(caller=ALICE, project_id=web, name="preview-1"))  # name released
    deleted = envs.call(c.DeleteEnvironment(caller=ALICE, env_id=made.id))
    assert deleted.deleted and deleted.version == 3
    assert code(envs.call, c.GetEnvironment(caller=ALICE, env_id=made.id)) == "environment_not_found"
    assert list(_envs(envs, web)) == ["production", "staging", "preview-1"]
    envs.call(c.CreateEnvironment(caller=ALICE, project_id=web, name="preview-2"))


def test_stale_versions_are_refused(envs: Local) -> None:
    env = _envs(envs, _project(envs))["staging"]
    stale = c.ReplaceEnvironment(caller=ALICE, env_id=env.id, name="qa", expected_version=7)
    assert code(envs.call, stale) == "precondition_failed"
    change = c.ChangeVars(
        caller=ALICE, env_id=env.id, set=[c.VarChange(key="A", value="1")], expected_version=1
    )
    assert envs.call(change).env_version == 2
    assert code(envs.call, change) == "precondition_failed"
    delete = c.DeleteEnvironment(caller=ALICE, env_id=env.id, expected_version=1)
    assert code(envs.call, delete) == "precondition_failed"


# --- variables and versions --------------------------------------------------------------------


def test_every_change_makes_a_numbered_version(envs: Local) -> None:
    env = _envs(envs, _project(envs))["production"]
    v2 = _set(envs, env.id, A="1", B="2")
    assert (v2.number, v2.new, v2.changed, v2.var_count) == (2, True, ["A", "B"], 2)
    assert _set(envs, env.id, A="1").new is False  # the same value: no new version
    v3 = envs.call(
        c.ChangeVars(
            caller=ALICE,
            env_id=env.id,
            set=[c.VarChange(key="A", value="one")],
            remove=["B"],
            missing_ok=True,
        )
    )
    assert (v3.number, v3.changed, v3.removed) == (3, ["A"], ["B"])
    missing = c.ChangeVars(caller=ALICE, env_id=env.id, remove=["NOPE"])
    assert code(envs.call, missing) == "env_var_not_found"
    pruned = envs.call(
        c.ChangeVars(caller=ALICE, env_id=env.id, set=[c.VarChange(key="C", value="3")], prune=True)
    )
    assert (pruned.number, pruned.removed, [v.key for v in pruned.vars]) == (4, ["A"], ["C"])
    # Old versions keep their whole map.
    old = envs.call(c.GetConfigVersion(caller=ALICE, env_id=env.id, number=2))
    assert {v.key: v.value for v in old.vars} == {"A": "1", "B": "2"} and not old.current
    assert envs.call(c.GetConfigVersion(caller=ALICE, env_id=env.id, number=1)).vars == []
    missing_version = c.GetConfigVersion(caller=ALICE, env_id=env.id, number=9)
    assert code(envs.call, missing_version) == "config_version_not_found"
    listed = envs.call(c.ListConfigVersions(caller=ALICE, env_id=env.id, limit=3))
    assert [v.number for v in listed.data] == [4, 3, 2] and listed.has_more
    rest = envs.call(c.ListConfigVersions(caller=ALICE, env_id=env.id, cursor=listed.next_cursor))
    assert [v.number for v in rest.data] == [1]
    assert envs.call(c.GetEnvironment(caller=ALICE, env_id=env.id)).config_version == 4


def test_equal_values_have_equal_fingerprints_and_secret_flags_stick(envs: Local) -> None:
    env = _envs(envs, _project(envs))["production"]
    envs.call(
        c.ChangeVars(
            caller=ALICE,
            env_id=env.id,
            set=[c.VarChange(key="S", value="x", secret=True), c.VarChange(key="P", value="x")],
        )
    )
    page = envs.call(c.ListEnvVars(caller=ALICE, env_id=env.id))
    s, p = sorted(page.data, key=lambda v: v.key, reverse=True)
    assert s.fingerprint == p.fingerprint and (s.redacted, s.value) == (True, None) and p.value == "x"
    _set(envs, env.id, S="y")  # a plain value keeps the secret flag
    assert [v.secret for v in envs.call(c.ListEnvVars(caller=ALICE, env_id=env.id)).data] == [False, True]


def test_limits_are_clear_422s(envs: Local) -> None:
    env = _envs(envs, _project(envs))["production"]

    def errors(*changes: c.VarChange) -> list[str]:
        with pytest.raises(DomainError) as info:
            envs.call(c.ChangeVars(caller=ALICE, env_id=env.id, set=list(changes)))
        assert info.value.reply.code == "validation_failed"
        return [e.message for e in info.value.reply.errors]

    assert "letter" in errors(c.VarChange(key="1A", value="x"))[0]
    assert "256" in errors(c.VarChange(key="K" * 257, value="x"))[0]
    assert "65536" in errors(c.VarChange(key="K", value="é" * 40_000))[0]
    assert "500" in errors(*[c.VarChange(key=f"K{i}", value="x") for i in range(501)])[0]
    _set(envs, env.id, **{f"K{i}": "x" for i in range(500)})
    assert "500" in errors(c.VarChange(key="ONE_MORE", value="x"))[0]
    other = _envs(envs, _project(envs, name="big"))["production"]
    big = [c.VarChange(key=f"B{i}", value="v" * 60_000) for i in range(9)]
    with pytest.raises(DomainError) as info:
        envs.call(c.ChangeVars(caller=ALICE, env_id=other.id, set=big))
    assert info.value.reply.code == "validation_failed" and "bytes" in info.value.reply.message


def test_var_pages_follow_the_keys(envs: Local) -> None:
    env = _envs(envs, _project(envs))["production"]
    _set(envs, env.id, **{f"K{i:02d}": str(i) for i in range(25)})
    first = envs.call(c.ListEnvVars(caller=ALICE, env_id=env.id, limit=10))
    second = envs.call(c.ListEnvVars(caller=ALICE, env_id=env.id, limit=10, cursor=first.next_cursor))
    third = envs.call(c.ListEnvVars(caller=ALICE, env_id=env.id, limit=10, cursor=second.next_cursor))
    keys = [v.key for page in (first, second, third) for v in page.data]
    assert keys == sorted(f"K{i:02d}" for i in range(25)) and not third.has_more
    bad = c.ListEnvVars(caller=ALICE, env_id=env.id, cursor="nonsense")
    assert code(envs.call, bad) == "invalid_cursor"


# --- redaction and reveal ----------------------------------------------------------------------


def test_secrets_are_redacted_until_revealed_and_every_reveal_is_recorded(envs: Local) -> None:
    env = _envs(envs, _project(envs))["production"]
    envs.call(
        c.ChangeVars(
            caller=ALICE, env_id=env.id, set=[c.VarChange(key="TOKEN", value="t0ps3cret", secret=True)]
        )
    )
    plain = envs.call(c.ListEnvVars(caller=ALICE, env_id=env.id))
    version = envs.call(c.GetConfigVersion(caller=ALICE, env_id=env.id))
    for item in (plain.data[0], version.vars[0]):
        assert (item.value, item.redacted, item.secret) == (None, True, True)
    head = _head(envs)
    refused = c.ListEnvVars(caller=READER, env_id=env.id, reveal=True)
    assert code(envs.call, refused) == "insufficient_scope"
    assert _head(envs) == head  # refused: nothing recorded
    shown = envs.call(c.ListEnvVars(caller=ALICE, env_id=env.id, reveal=True)).data[0]
    assert (shown.value, shown.redacted) == ("t0ps3cret", False)
    envs.call(c.GetConfigVersion(caller=ALICE, env_id=env.id, number=2, reveal=True, via="dotenv"))
    store = envs.partitions["live"].store
    reveals = [
        store.mapper.to_domain_event(n)
        for n in store.recorder.select_notifications(head, 100, inclusive_of_start=False)
    ]
    assert [type(e) for e in reveals] == [d.SecretRevealed, d.SecretRevealed]
    assert [(e.keys, e.config_version, e.via, e.environment) for e in reveals] == [
        (("TOKEN",), 2, "vars", "production"),
        (("TOKEN",), 2, "dotenv", "production"),
    ]
    public = published(envs.partitions["live"], views.PUBLISHER, after=head)
    assert len(public) == 2
    subject, event = public[0]
    assert subject == "evt.live.acct_alice.secret.revealed" and event.type == "secret.revealed"
    assert event.data.keys == ["TOKEN"] and event.data.environment_id == env.id
    assert event.actor is not None and event.actor.key_id == "key_alice"
    # A reveal with nothing secret to show records nothing.
    other = _envs(envs, _project(envs, name="other"))["staging"]
    before = _head(envs)
    envs.call(c.ListEnvVars(caller=ALICE, env_id=other.id, reveal=True))
    assert _head(envs) == before


def test_public_events_carry_names_never_values(envs: Local) -> None:
    start = _head(envs)
    project_id = _project(envs)
    env = _envs(envs, project_id)["production"]
    envs.call(
        c.ChangeVars(caller=ALICE, env_id=env.id, set=[c.VarChange(key="PW", value="v4lue-x9", secret=True)])
    )
    _set(envs, env.id, URL="http://plain-y7")
    envs.call(c.ChangeVars(caller=ALICE, env_id=env.id, remove=["URL"]))
    envs.call(c.ReplaceEnvironment(caller=ALICE, env_id=env.id, name="prod"))
    envs.call(c.DeleteEnvironment(caller=ALICE, env_id=env.id))
    events = [e for _, e in published(envs.partitions["live"], views.PUBLISHER, after=start)]
    assert [e.type for e in events] == [
        "env.created",
        "env.created",
        "env.vars.changed",
        "env.vars.changed",
        "env.vars.changed",
        "env.updated",
        "env.deleted",
    ]
    changed = [e.data for e in events if e.type == "env.vars.changed"]
    assert [(x.version, x.changed, x.removed) for x in changed] == [
        (2, ["PW"], []),
        (3, ["URL"], []),
        (4, [], ["URL"]),
    ]
    assert changed[0].environment_id == env.id and changed[0].project_id == project_id
    assert events[-2].data.changed == ["name"] and events[-1].data.deleted is True
    text = msgspec.json.encode(events).decode()
    assert "v4lue-x9" not in text and "plain-y7" not in text


# --- access ------------------------------------------------------------------------------------


def test_other_accounts_modes_and_restricted_keys_get_404(envs: Local) -> None:
    mine, other = _project(envs), _project(envs, name="other")
    prod, staging = _envs(envs, mine)["production"], _envs(envs, mine)["staging"]
    outsiders = [
        BOB,
        Caller(account_id="acct_alice", mode="test", key_id="key_alice_test"),
        msgspec.structs.replace(ALICE, project_ids=(other,)),
        msgspec.structs.replace(ALICE, environments=("staging",)),
    ]
    for who in outsiders:
        for msg in [
            c.GetEnvironment(caller=who, env_id=prod.id),
            c.ListEnvVars(caller=who, env_id=prod.id),
            c.ListConfigVersions(caller=who, env_id=prod.id),
            c.GetConfigVersion(caller=who, env_id=prod.id),
            c.ReplaceEnvironment(caller=who, env_id=prod.id, name="x"),
            c.DeleteEnvironment(caller=who, env_id=prod.id),
            c.ChangeVars(caller=who, env_id=prod.id, remove=["A"]),
        ]:
            assert code(envs.call, msg) == "environment_not_found", (who, type(msg))
    only_staging = outsiders[-1]
    assert list(_envs(envs, mine, only_staging)) == ["staging"]
    assert envs.call(c.GetEnvironment(caller=only_staging, env_id=staging.id)).name == "staging"
    outside_name = c.CreateEnvironment(caller=only_staging, project_id=mine, name="preview-9")
    assert code(envs.call, outside_name) == "key_restricted"
    rename_away = c.ReplaceEnvironment(caller=only_staging, env_id=staging.id, name="qa")
    assert code(envs.call, rename_away) == "key_restricted"
    for who in outsiders[:3]:
        listing = c.ListEnvironments(caller=who, project_id=mine)
        assert code(envs.call, listing) == "project_not_found"


def test_member_roles_bound_member_bound_keys(envs: Local) -> None:
    owner = msgspec.structs.replace(ALICE, key_id="key_ann", member_id="mem_ann")
    ben = msgspec.structs.replace(ALICE, key_id="key_ben", member_id="mem_ben")
    project_id = envs.call(pc.CreateProject(caller=owner, name="team")).id
    env = _envs(envs, project_id, owner)["production"]
    _set(envs, env.id, owner, SECRET="x")
    assert code(envs.call, c.GetEnvironment(caller=ben, env_id=env.id)) == "environment_not_found"
    envs.call(pc.PutProjectMember(caller=owner, project_id=project_id, member_id="mem_ben", role="viewer"))
    assert envs.call(c.GetEnvironment(caller=ben, env_id=env.id)).name == "production"
    remove = c.ChangeVars(caller=ben, env_id=env.id, remove=["SECRET"])
    assert code(envs.call, remove) == "insufficient_role"
    reveal = c.ListEnvVars(caller=ben, env_id=env.id, reveal=True)
    assert code(envs.call, reveal) == "insufficient_role"
    envs.call(pc.PutProjectMember(caller=owner, project_id=project_id, member_id="mem_ben", role="developer"))
    assert _set(envs, env.id, ben, OTHER="y").number == 3
    assert code(envs.call, c.DeleteEnvironment(caller=ben, env_id=env.id)) == "insufficient_role"
    assert envs.call(c.DeleteEnvironment(caller=owner, env_id=env.id)).deleted


# --- encryption at rest ------------------------------------------------------------------------


def _postgres_text() -> str:
    """Every row of every table in this test's PostgreSQL schema, as text."""
    schema = os.environ["POSTGRES_SCHEMA"]
    chunks = []
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        assert tables
        for (table,) in tables:
            rows = conn.execute(f'SELECT t::text FROM "{schema}"."{table}" AS t').fetchall()
            chunks += [row[0] for row in rows]
    return "\n".join(chunks)


def test_no_value_is_stored_in_plaintext(backend: str, tmp_path: Path, envs: Local) -> None:
    secret = f"plaintext-{uuid.uuid4().hex}"
    plain = f"config-{uuid.uuid4().hex}"
    env = _envs(envs, _project(envs))["production"]
    envs.call(
        c.ChangeVars(
            caller=ALICE,
            env_id=env.id,
            set=[
                c.VarChange(key="DB_PASSWORD", value=secret, secret=True),
                c.VarChange(key="SITE", value=plain),
            ],
        )
    )
    assert _values(envs, env.id) == {"DB_PASSWORD": secret, "SITE": plain}
    needles = [secret.encode(), plain.encode(), secret.encode().hex().encode(), plain.encode().hex().encode()]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:  # SQLite databases, their -wal and -shm files, the read models
        content = path.read_bytes()
        assert not any(n in content for n in needles), path
    if backend == "postgres":
        text = _postgres_text()
        assert "DB_PASSWORD" in text or "\\x" in text  # the events are there, as ciphertext
        assert not any(n.decode() in text for n in needles)


# --- master-key rotation ----------------------------------------------------------------------


def test_rotation_rewraps_every_data_key_without_touching_history(
    services: Services, envs: Local, master: bytes
) -> None:
    project_id = _project(envs)
    prod, staging = _envs(envs, project_id)["production"], _envs(envs, project_id)["staging"]
    _set(envs, prod.id, A="alpha")
    _set(envs, staging.id, B="beta")
    sandbox = msgspec.structs.replace(ALICE, mode="test")
    test_env = _envs(envs, _project(envs, sandbox), sandbox)["staging"]
    _set(envs, test_env.id, sandbox, T="test-value")

    # Restarted with the new key, the old one kept as previous (another replica on the same data).
    new = os.urandom(32)
    rotating = services.projects(crypto.Keyring(current=new, previous=(master,)))
    assert _values(rotating, prod.id) == {"A": "alpha"}  # the old key still unwraps
    _set(rotating, prod.id, C="gamma")
    wrong = c.RewrapDataKeys(expected_kek_id=crypto.kek_id(master))
    assert code(rotating.call, wrong) == "master_key_mismatch"
    result = rotating.call(c.RewrapDataKeys(expected_kek_id=crypto.kek_id(new)))
    assert result.kek_id == crypto.kek_id(new)
    assert result.modes["live"] == c.RewrapCount(total=2, rewrapped=2, unavailable=0)
    assert result.modes["test"] == c.RewrapCount(total=1, rewrapped=1, unavailable=0)
    again = rotating.call(c.RewrapDataKeys())
    assert again.modes["live"].rewrapped == 0  # idempotent
    assert envs.call(c.GetEnvironment(caller=ALICE, env_id=prod.id)).version == 3  # ETag unchanged

    only_new = services.projects(crypto.Keyring(current=new))
    assert _values(only_new, prod.id) == {"A": "alpha", "C": "gamma"}
    assert _values(only_new, staging.id) == {"B": "beta"}
    assert _values(only_new, test_env.id, sandbox) == {"T": "test-value"}
    old_version = only_new.call(c.GetConfigVersion(caller=ALICE, env_id=prod.id, number=2))
    assert [v.value for v in old_version.vars] == ["alpha"]

    stranger = services.projects(crypto.Keyring(current=os.urandom(32)))
    assert code(_values, stranger, prod.id) == "encryption_unavailable"
    no_key = services.projects(crypto.Keyring(current=None))
    fresh = _envs(no_key, _project(envs, name="keyless"))["production"]
    assert code(_set, no_key, fresh.id, A="x") == "encryption_unavailable"


def test_the_read_model_rebuilds_to_the_same_rows(envs: Local) -> None:
    project_id = _project(envs)
    env = _envs(envs, project_id)["production"]
    _set(envs, env.id, A="1")
    envs.call(c.CreateEnvironment(caller=ALICE, project_id=project_id, name="preview-3"))
    before = _envs(envs, project_id)
    model = envs.partitions["live"].read_model("environments")
    rows = [tuple(r) for r in model.query("SELECT * FROM environments ORDER BY id")]
    keys = [tuple(r) for r in model.query("SELECT * FROM data_keys ORDER BY id")]
    assert len(rows) == 3 and len(keys) == 1
    # The rebuild counts projects (the environments read model reports no count of its own).
    assert envs.call(pc.RebuildReadModels()).modes == {"live": 1, "test": 0}
    assert [tuple(r) for r in model.query("SELECT * FROM environments ORDER BY id")] == rows
    assert [tuple(r) for r in model.query("SELECT * FROM data_keys ORDER BY id")] == keys
    assert _envs(envs, project_id) == before
