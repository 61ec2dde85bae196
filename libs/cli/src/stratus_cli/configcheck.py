"""`stratus config check`: the production settings of this environment, judged before start-up.

Run it with the environment the services will get (in a container: `docker compose run --rm cli
stratus config check`; on Kubernetes, in the bootstrap Job's pod). Each finding is an `error`
(unsafe or broken in production: exit 1) or a `warning` (worth a look: exit 0). The local stack
(`make run`) fails it on purpose: it runs an embedded bus on SQLite and allows private webhook
targets, which is right on a laptop and wrong for tenants.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from stratus_contracts import masterkey


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    setting: str
    message: str


def _int(env: Mapping[str, str], name: str, default: int) -> int | None:
    try:
        return int(env.get(name, str(default)))
    except ValueError:
        return None


def check(env: Mapping[str, str], replicas: int | None = None) -> list[Finding]:
    """What is missing or unsafe in `env` for a production deployment of `replicas` of each
    service (default `STRATUS_REPLICAS`, else 1)."""
    found: list[Finding] = []

    def error(setting: str, message: str) -> None:
        found.append(Finding("error", setting, message))

    def warning(setting: str, message: str) -> None:
        found.append(Finding("warning", setting, message))

    if replicas is None:
        replicas = _int(env, "STRATUS_REPLICAS", 1)
        if replicas is None:
            error("STRATUS_REPLICAS", "must be a whole number")
            replicas = 1

    key = env.get(masterkey.MASTER_KEY_ENV, "").strip()
    if not key:
        error(
            masterkey.MASTER_KEY_ENV,
            "not set: the projects and webhooks services can neither encrypt variables nor seal "
            "signing secrets (generate one with `stratus secrets generate-master-key`)",
        )
    else:
        try:
            masterkey.parse(key)
        except masterkey.MasterKeyError as exc:
            error(masterkey.MASTER_KEY_ENV, f"malformed: {exc}")
    for previous in filter(None, (k.strip() for k in env.get("STRATUS_MASTER_KEY_PREVIOUS", "").split(","))):
        try:
            masterkey.parse(previous)
        except masterkey.MasterKeyError as exc:
            error("STRATUS_MASTER_KEY_PREVIOUS", f"a key in it is malformed: {exc}")

    admin = env.get("STRATUS_ADMIN_KEY", "")
    if admin.startswith("sk_live_"):
        error(
            "STRATUS_ADMIN_KEY",
            "a live-mode admin key fixed in the environment: anyone who reads the configuration "
            "holds the operator account; create keys with `stratus accounts create` and unset it",
        )
    elif admin:
        warning("STRATUS_ADMIN_KEY", "a test-mode admin key fixed in the environment")

    if env.get("STRATUS_WEBHOOKS_ALLOW_PRIVATE", "") == "1":
        error(
            "STRATUS_WEBHOOKS_ALLOW_PRIVATE",
            "webhook endpoints may target loopback and private addresses: tenants can reach the "
            "platform's own network (SSRF); unset it",
        )

    if not env.get("NATS_URL"):
        error("NATS_URL", "not set: `stratus up` would run an embedded, unreplicated nats-server")

    persistence = env.get("PERSISTENCE_MODULE", "") or "eventsourcing.sqlite"
    if persistence == "eventsourcing.sqlite":
        if replicas > 1:
            error(
                "PERSISTENCE_MODULE",
                f"SQLite with {replicas} replicas: each replica would keep its own event store; "
                "use eventsourcing.postgres",
            )
        else:
            warning("PERSISTENCE_MODULE", "SQLite event stores: one machine, one replica of each service")
    elif persistence == "eventsourcing.postgres":
        for name in ("POSTGRES_HOST", "POSTGRES_DBNAME", "POSTGRES_USER", "POSTGRES_PASSWORD"):
            if not env.get(name):
                error(name, "not set, and PERSISTENCE_MODULE is eventsourcing.postgres")
    else:
        error("PERSISTENCE_MODULE", f"{persistence!r} is neither eventsourcing.sqlite nor .postgres")

    metrics = env.get("STRATUS_METRICS_DSN", "")
    if not metrics or metrics.startswith("chdb:"):
        (error if replicas > 1 else warning)(
            "STRATUS_METRICS_DSN",
            "the embedded chDB engine (one process, local files): point it at a ClickHouse server",
        )

    scale = env.get("STRATUS_CLOCK_SCALE", "1")
    if scale not in ("", "1", "1.0"):
        error("STRATUS_CLOCK_SCALE", "for tests only: the webhooks service's clock runs fast")
    if env.get("STRATUS_RELAY_ENABLED", "1") == "0":
        error("STRATUS_RELAY_ENABLED", "0: committed events never reach JetStream (recovery tests only)")
    if env.get("STRATUS_HOST", "127.0.0.1") in ("0.0.0.0", "::") and not env.get("STRATUS_TRUSTED_PROXIES"):
        warning(
            "STRATUS_TRUSTED_PROXIES",
            "not set while the gateway listens on every address: behind a load balancer, every "
            "client shares its address (rate limits, IP allowlists)",
        )
    return found


def main(replicas: int | None, as_json: bool, env: Mapping[str, str] | None = None) -> int:
    findings = check(os.environ if env is None else env, replicas)
    errors = [f for f in findings if f.level == "error"]
    if as_json:
        print(json.dumps({"ok": not errors, "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        for f in findings:
            print(f"{f.level:8} {f.setting}: {f.message}")
        verdict = f"{len(errors)} error(s)" if errors else "no errors"
        print(f"stratus config check: {verdict}, {len(findings) - len(errors)} warning(s)", file=sys.stderr)
    return 1 if errors else 0
