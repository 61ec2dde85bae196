"""The event catalogue: every type a service publishes is declared once with its data Struct,
and docs/events.md is generated from it and up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus_contracts.events import EventType, catalogue, markdown, schema
from stratus_deployments.views import PUBLISHER as DEPLOYMENTS
from stratus_identity.views import PUBLISHER as IDENTITY
from stratus_projects.bootstrap import SERVICE as PROJECTS
from stratus_webhooks.views import PUBLISHER as WEBHOOKS

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_docs_events_md_is_generated_from_the_catalogue() -> None:
    assert DOC.read_text() == markdown(), "run: uv run python -m stratus_contracts.events > docs/events.md"


def test_every_published_domain_event_maps_to_a_catalogued_type() -> None:
    types = catalogue()
    published = {
        entry[0].name
        for publisher in (IDENTITY, PROJECTS.publisher, DEPLOYMENTS, WEBHOOKS)
        for entry in publisher.table.values()
    }
    assert published <= set(types)
    # ...and nothing is catalogued that no service publishes, but the test event a webhook
    # endpoint is sent alone (delivered, never on the stream).
    assert set(types) == published | {"webhook.test"}


def test_the_schema_names_each_types_data() -> None:
    described = schema()
    assert set(described["types"]) == set(catalogue())
    for name, entry in described["types"].items():
        component = entry["data"]["$ref"].rsplit("/", 1)[-1]
        assert component in described["components"], name
        assert entry["subject"].startswith("evt.*.*.")


def test_an_event_must_carry_its_declared_data() -> None:
    project_created = catalogue()["project.created"]
    assert isinstance(project_created, EventType)
    with pytest.raises(TypeError):
        project_created.event(id="evt_x", created=None, mode="live", account="acct_a", data={}, actor=None)  # type: ignore[arg-type]
    assert project_created.subject("live", "acct_a") == "evt.live.acct_a.project.created"
    assert catalogue()["env.vars.changed"].subject("test", "acct_b") == "evt.test.acct_b.env.vars_changed"
