"""`stratus config check`: each unsafe or missing production setting is reported, a sound
production environment passes, and the command's exit code says which."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

from stratus_cli.configcheck import check

KEY = base64.b64encode(os.urandom(32)).decode()

PRODUCTION = {
    "STRATUS_MASTER_KEY": KEY,
    "NATS_URL": "nats://nats:4222",
    "PERSISTENCE_MODULE": "eventsourcing.postgres",
    "POSTGRES_HOST": "postgres",
    "POSTGRES_DBNAME": "stratus",
    "POSTGRES_USER": "stratus",
    "POSTGRES_PASSWORD": "secret",
    "STRATUS_METRICS_DSN": "http://clickhouse:8123/stratus",
    "STRATUS_REPLICAS": "2",
}


def errors(env: dict[str, str], replicas: int | None = None) -> dict[str, str]:
    return {f.setting: f.message for f in check(env, replicas) if f.level == "error"}


def test_a_sound_production_environment_has_no_findings() -> None:
    assert check(PRODUCTION) == []


def test_each_unsafe_setting_is_an_error() -> None:
    cases = {
        "STRATUS_MASTER_KEY": {"STRATUS_MASTER_KEY": ""},
        "STRATUS_ADMIN_KEY": {"STRATUS_ADMIN_KEY": "sk_live_" + "a" * 32},
        "STRATUS_WEBHOOKS_ALLOW_PRIVATE": {"STRATUS_WEBHOOKS_ALLOW_PRIVATE": "1"},
        "NATS_URL": {"NATS_URL": ""},
        "STRATUS_CLOCK_SCALE": {"STRATUS_CLOCK_SCALE": "36000"},
        "STRATUS_RELAY_ENABLED": {"STRATUS_RELAY_ENABLED": "0"},
        "POSTGRES_PASSWORD": {"POSTGRES_PASSWORD": ""},
    }
    for setting, change in cases.items():
        found = errors({**PRODUCTION, **change})
        assert list(found) == [setting], (setting, found)


def test_a_malformed_master_key_is_an_error() -> None:
    assert "malformed" in errors({**PRODUCTION, "STRATUS_MASTER_KEY": "not-base64!"})["STRATUS_MASTER_KEY"]
    found = errors({**PRODUCTION, "STRATUS_MASTER_KEY_PREVIOUS": f"{KEY},short"})
    assert list(found) == ["STRATUS_MASTER_KEY_PREVIOUS"]


def test_embedded_stores_are_errors_with_replicas_and_warnings_without() -> None:
    sqlite = {**PRODUCTION, "PERSISTENCE_MODULE": "", "STRATUS_METRICS_DSN": "chdb:///var/lib/metrics"}
    assert set(errors(sqlite)) == {"PERSISTENCE_MODULE", "STRATUS_METRICS_DSN"}
    single = check(sqlite, replicas=1)
    assert {f.setting for f in single} == {"PERSISTENCE_MODULE", "STRATUS_METRICS_DSN"}
    assert {f.level for f in single} == {"warning"}


def test_the_local_stack_fails_the_check_and_the_command_exits_1() -> None:
    # What `stratus up` runs with: no bus, SQLite, private webhook targets allowed.
    env = {"PATH": os.environ["PATH"], "STRATUS_WEBHOOKS_ALLOW_PRIVATE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "stratus_cli.main", "config", "check", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert {"STRATUS_MASTER_KEY", "NATS_URL", "STRATUS_WEBHOOKS_ALLOW_PRIVATE"} <= {
        f["setting"] for f in report["findings"] if f["level"] == "error"
    }
    passed = subprocess.run(
        [sys.executable, "-m", "stratus_cli.main", "config", "check"],
        env={"PATH": os.environ["PATH"], **PRODUCTION},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert passed.returncode == 0, passed.stdout + passed.stderr
