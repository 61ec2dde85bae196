"""The SDK against a running stack: auto-pagination over 250 projects (sync and async), errors as
exceptions with the problem's fields, Idempotency-Keys on writes only, settings from the
environment, and a round of every resource family through typed methods."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import stratus
from stratus import models
from stratus_testing import Stack

from .support import Recorder, new_account

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> dict:
    """An account of its own, so that lists hold exactly what these tests made."""
    return new_account(stack, "sdk-client")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def recorded(stack: Stack, recorder: Recorder) -> Iterator[stratus.Client]:
    with (
        recorder.client() as http,
        stratus.Client(stack.test_key, base_url=stack.base_url, http_client=http) as c,
    ):
        yield c


def test_lists_iterate_every_page_250_projects(stack: Stack, tenant: dict) -> None:
    key = tenant["keys"]["test"]

    async def make() -> set[str]:
        async with stratus.AsyncClient(key, base_url=stack.base_url) as client:
            gate = asyncio.Semaphore(8)

            async def one(i: int) -> str:
                async with gate:
                    return (await client.projects.create(name=f"page-{i:03d}")).id

            return set(await asyncio.gather(*(one(i) for i in range(250))))

    made = asyncio.run(make())
    assert len(made) == 250

    with stratus.Client(key, base_url=stack.base_url) as client:
        pager = client.projects.list(limit=100)
        assert [len(page.items) for page in pager.pages()] == [100, 100, 50]
        listed = list(pager)
        assert all(isinstance(p, models.Project) for p in listed)
        assert {p.id for p in listed} == made and len(listed) == 250
        # The default page size (20): 13 pages, followed to the end, oldest first when asked.
        by_created = [p.id for p in client.projects.list(sort="created")]
        assert len(by_created) == 250 and set(by_created) == made
        assert [p.name for p in client.projects.list(sort="name", limit=100)] == sorted(
            f"page-{i:03d}" for i in range(250)
        )
        first = client.projects.list(limit=7).first_page()
        assert len(first.items) == 7 and first.has_more and first.next_cursor and first.request_id

    async def iterate() -> list[str]:
        async with stratus.AsyncClient(key, base_url=stack.base_url) as client:
            return [p.id async for p in client.projects.list(limit=100)]

    assert set(asyncio.run(iterate())) == made


def test_errors_are_exceptions_carrying_the_problem(
    stack: Stack, recorded: stratus.Client, recorder: Recorder
) -> None:
    with pytest.raises(stratus.NotFoundError) as missing:
        recorded.projects.get("prj_doesnotexist")
    error = missing.value
    assert (error.status, error.code) == (404, "project_not_found")
    assert error.detail and error.title and error.type == "/errors/project_not_found"
    assert error.request_id == recorder.attempts[-1]["response_headers"]["x-request-id"]
    assert error.request_id in str(error) and "project_not_found" in str(error)

    name = f"dup-{uuid.uuid4().hex[:8]}"
    recorded.projects.create(name=name)
    with pytest.raises(stratus.ConflictError) as taken:
        recorded.projects.create(name=name)
    assert taken.value.code == "project_name_taken"

    with pytest.raises(stratus.ValidationError) as invalid:
        recorded.projects.create(name="Not A DNS Label")
    assert invalid.value.code == "validation_failed"
    assert [e.field for e in invalid.value.errors] == ["name"]
    assert isinstance(invalid.value.errors[0], models.FieldError)

    with (
        stratus.Client("sk_test_" + "x" * 43, base_url=stack.base_url) as stranger,
        pytest.raises(stratus.AuthenticationError) as denied,
    ):
        stranger.me()
    assert denied.value.status == 401 and denied.value.code

    reader_key = recorded.keys.create(name="reader", scopes=["read"]).secret
    assert reader_key is not None
    with stratus.Client(reader_key, base_url=stack.base_url) as reader:
        with pytest.raises(stratus.PermissionDeniedError) as forbidden:
            reader.projects.create(name="nope")
        assert forbidden.value.code == "insufficient_scope"
        assert isinstance(forbidden.value, stratus.APIError)

    project = recorded.projects.create(name=f"etag-{uuid.uuid4().hex[:8]}")
    recorded.projects.update(project.id, description="first", if_match=project.version)
    with pytest.raises(stratus.PreconditionFailedError) as stale:
        recorded.projects.update(project.id, description="second", if_match=project.version)
    assert stale.value.code == "precondition_failed"


def test_every_write_carries_a_fresh_idempotency_key_and_no_read_does(
    recorded: stratus.Client, recorder: Recorder
) -> None:
    first = recorded.projects.create(name=f"keyed-{uuid.uuid4().hex[:8]}")
    recorded.projects.get(first.id)
    recorded.projects.update(first.id, description="x")
    recorded.metrics.query(metric="requests", range="1h")
    keys = [a["headers"].get("idempotency-key") for a in recorder.attempts]
    assert UUID.match(keys[0]) and UUID.match(keys[2]) and keys[0] != keys[2]
    assert keys[1] is None  # a GET
    assert keys[3] is None  # metrics.query: a read, though a POST

    # A caller's own key is sent as it is: repeating it replays the first answer.
    own = f"order-{uuid.uuid4()}"
    name = f"own-{uuid.uuid4().hex[:8]}"
    made = recorded.projects.create(name=name, idempotency_key=own)
    again = recorded.projects.create(name=name, idempotency_key=own)
    assert again == made
    assert recorder.attempts[-1]["headers"]["idempotency-key"] == own
    assert recorder.attempts[-1]["response_headers"].get("idempotent-replayed") == "true"


def test_settings_come_from_the_environment(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUS_API_KEY", stack.test_key)
    monkeypatch.setenv("STRATUS_API_URL", stack.base_url + "/")
    with stratus.Client() as client:
        me = client.me()
    assert isinstance(me, models.Me) and me.mode == "test" and "admin" in me.scopes
    monkeypatch.delenv("STRATUS_API_KEY")
    with pytest.raises(stratus.StratusError, match="STRATUS_API_KEY"):
        stratus.Client()


def test_a_conditional_get_is_not_modified_while_the_version_is_current(client: stratus.Client) -> None:
    project = client.projects.create(name=f"cond-{uuid.uuid4().hex[:8]}")
    with pytest.raises(stratus.NotModified) as held:
        client.projects.get(project.id, if_none_match=project.version)
    assert held.value.etag == f'"{project.version}"'
    changed = client.projects.update(project.id, description="changed")
    assert client.projects.get(project.id, if_none_match=project.version) == changed


def test_a_round_of_every_resource_family(stack: Stack, client: stratus.Client) -> None:
    suffix = uuid.uuid4().hex[:8]
    project = client.projects.create(name=f"round-{suffix}", description="a round")
    assert isinstance(project, models.Project) and project.description == "a round"
    updated = client.projects.update(
        project.id, build={"repo_url": "https://example.com/r.git", "start_command": "./run"}
    )
    assert updated.build is not None and updated.build.start_command == "./run"
    assert [p.id for p in client.projects.list(name=project.name)] == [project.id]

    # Environments, variables, versions, .env files.
    envs = list(client.envs.list(project.id))
    assert [e.name for e in envs] == ["production", "staging"]
    preview = client.envs.create(project.id, name="preview", branch="dev", build=models.BuildSettingsInput())
    preview = client.envs.update(preview.id, auto_deploy=True, if_match=preview.version)
    assert preview.auto_deploy and preview.branch == "dev"
    assert client.envs.replace(preview.id, name="preview").branch is None
    env = envs[0]
    one = client.envs.vars.set(env.id, key="PLAIN", value="1")
    assert one.new and one.changed == ["PLAIN"]
    many = client.envs.vars.set(
        env.id,
        vars=[models.VarInput(key="TOKEN", value="s3cret", secret=True), {"key": "MODE", "value": "x"}],
    )
    assert sorted(many.changed) == ["MODE", "TOKEN"]
    patched = client.envs.vars.patch(env.id, {"MODE": None, "EXTRA": {"value": "y", "secret": False}})
    assert patched.removed == ["MODE"] and patched.changed == ["EXTRA"]
    listed = {v.key: v for v in client.envs.vars.list(env.id)}
    assert listed["TOKEN"].redacted and listed["TOKEN"].value is None
    assert {v.key: v.value for v in client.envs.vars.list(env.id, reveal=True)}["TOKEN"] == "s3cret"
    assert client.envs.vars.delete(env.id, "EXTRA").removed == ["EXTRA"]
    text = client.envs.export_dotenv(env.id)
    assert "PLAIN=1" in text and "s3cret" not in text
    imported = client.envs.import_dotenv(env.id, "FROM_FILE=yes\n")
    assert imported.changed == ["FROM_FILE"]
    versions = list(client.envs.versions.list(env.id))
    assert versions[0].number == imported.number and versions[-1].number == 1
    assert {v.key for v in client.envs.versions.get(env.id, imported.number).vars} >= {"PLAIN", "FROM_FILE"}
    assert client.envs.delete(preview.id).deleted

    # Members and project teams, keys, tokens.
    member = client.members.create(email=f"m-{suffix}@example.com", name="M")
    assert client.members.get(member.id).email == member.email
    assert member.id in {m.id for m in client.members.list()}
    role = client.projects.members.set(project.id, member.id, role="developer")
    assert role.role == "developer"
    assert client.projects.members.get(project.id, member.id).role == "developer"
    assert member.id in {m.id for m in client.projects.members.list(project.id)}
    client.projects.members.remove(project.id, member.id)
    key = client.keys.create(
        name=f"k-{suffix}", scopes=["read"], expires_at=datetime.now(UTC) + timedelta(days=1)
    )
    assert key.secret and key.secret.startswith("sk_test_")
    assert client.keys.update(key.id, name="renamed").name == "renamed"
    assert client.keys.get(key.id).hint
    rotated = client.keys.rotate(key.id, overlap_seconds=0)
    assert rotated.secret and rotated.secret != key.secret
    assert client.keys.revoke(key.id).revoked is not None
    assert key.id in {k.id for k in client.keys.list(revoked=True)}
    token = client.tokens.create(scopes=["read"], project_ids=[project.id], ttl_seconds=120, subject="ui")
    with stratus.Client(token.token, base_url=stack.base_url) as narrowed:
        me = narrowed.me()
    assert me.token is not None and me.token.subject == "ui" and me.project_ids == [project.id]
    assert client.members.delete(member.id).deleted

    # Webhooks (test mode records deliveries as simulated), events, audit, event types.
    hook = client.webhooks.create(url="https://example.com/hook", events=["project.created"])
    assert hook.secret and hook.secret.startswith("whsec_")
    assert client.webhooks.update(hook.id, description="d").description == "d"
    assert client.webhooks.get(hook.id).secret_hint
    delivery = client.webhooks.test(hook.id)
    assert client.webhooks.deliveries.get(hook.id, delivery.id).event_type == "webhook.test"
    assert delivery.id in {d.id for d in client.webhooks.deliveries.list(hook.id)}
    again = client.webhooks.redeliver(hook.id, delivery_id=delivery.id)
    assert all(isinstance(d, models.WebhookDelivery) for d in again)
    assert client.webhooks.rotate_secret(hook.id, grace_seconds=0).secret not in (None, hook.secret)
    assert hook.id in {h.id for h in client.webhooks.list()}
    assert client.webhooks.delete(hook.id).deleted
    created = next(iter(client.events.list(type="project.created", project=project.id)))
    assert created.data["id"] == project.id
    assert client.events.get(created.id) == created
    assert next(iter(client.audit_events.list(action="key.", limit=5))).action.startswith("key.")
    types = client.event_types.list()
    assert "project.created" in {t.name for t in types}
    assert client.event_types.get("project.created").schema

    # Metrics, deployments (none yet), system.
    accepted = client.metrics.record([{"name": "sdk.round", "value": 2.5, "labels": {"suite": "sdk"}}])
    assert accepted.accepted == 1
    for series in (client.metrics.requests, client.metrics.latency, client.metrics.errors):
        result = series(range="1h", step="1h", group_by=["route"])
        assert isinstance(result, models.MetricsResult) and result.step == 3600
    assert client.metrics.query(metric="requests", aggregation="count", range="1h").metric == "requests"
    assert list(client.deployments.list(project=project.id)) == []
    assert client.system.health()["status"] == "ok"
    assert client.system.ready()["status"] == "ready"
    assert client.system.explain_error("project_not_found").startswith("project_not_found")
    assert client.projects.delete(project.id).deleted


def test_the_async_client_has_the_same_calls(stack: Stack) -> None:
    async def run() -> None:
        async with stratus.AsyncClient(stack.test_key, base_url=stack.base_url) as client:
            project = await client.projects.create(name=f"async-{uuid.uuid4().hex[:8]}")
            env = (await client.envs.list(project.id).first_page()).items[0]
            version = await client.envs.vars.set(env.id, key="K", value="v")
            assert version.changed == ["K"]
            with pytest.raises(stratus.NotFoundError):
                await client.deployments.get("dep_missing")
            fast = client.with_options(max_retries=0, timeout=5)
            assert (await fast.projects.get(project.id)).id == project.id
            assert (await client.projects.delete(project.id)).deleted

    asyncio.run(run())
