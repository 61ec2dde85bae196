"""The deployment files, checked offline (no Docker engine, no cluster): docker-compose.yml with
Debian's `docker-compose config -q`, every image's Dockerfile and build context, what the build
context lets through (.dockerignore), and every Kubernetes manifest with `kubernetes-validate
--strict`, plus the rules the issue sets for them (probes, resources, non-root, secrets by name,
replicas, documented variables)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stratus_contracts import services
from tests.deploy.dockerignore import context_files, ignored, read_patterns

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_DIR = ROOT / "deploy" / "compose"
DOCKER_DIR = ROOT / "deploy" / "docker"
K8S = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.31.0"

# The metrics service is being added on another branch: every file carries it already; its
# package is asserted on once services/metrics exists.
METRICS_PRESENT = (ROOT / "services" / "metrics").is_dir()
PROCESSES = sorted({s.name for s in services.PROCESSES} | {"metrics"})
# One replica on Kubernetes: the local runner serves apps from its own pod, which another cannot.
K8S_SINGLE_REPLICA = {"deployments"}
# One replica in Compose (one host): audit because every replica there gets the same environment,
# so the same STRATUS_REPLICA_ID; webhooks and metrics by choice.
COMPOSE_SINGLE_REPLICA = {"deployments", "webhooks", "audit", "metrics"}
STATEFUL = {"audit"}  # a StatefulSet: a volume and a replica id per pod
MASTER_KEY_HOLDERS = {s.name for s in services.PROCESSES if s.holds_master_key}
IMAGES = [*PROCESSES, "cli"]


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_file_is_valid_for_docker_compose(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed: `make install` installs it (apt-get, as root)"
    # The secrets files are git-ignored: validate with the committed examples in their place.
    for entry in ROOT.iterdir():
        if entry.name not in {"deploy", ".git", ".venv", ".stratus"}:
            (tmp_path / entry.name).symlink_to(entry)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("__pycache__"))
    for example in (tmp_path / "deploy" / "compose").glob("*.env.example"):
        example.with_suffix("").write_text(example.read_text())
    done = subprocess.run(
        [binary, "-f", "docker-compose.yml", "config", "-q"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_compose_runs_every_process_with_health_checks_and_restarts() -> None:
    svcs = _compose()["services"]
    for name in PROCESSES:
        svc = svcs[name]
        assert svc["restart"] == "unless-stopped", name
        assert "healthcheck" not in svc or svc["healthcheck"]["test"], name  # else the image's
        assert f"deploy/docker/{name}/Dockerfile" == svc["build"]["dockerfile"], name
        replicas = svc["deploy"]["replicas"]
        assert replicas == 1 if name in COMPOSE_SINGLE_REPLICA else replicas >= 2, name
        assert svc["read_only"] and svc["cap_drop"] == ["ALL"], name
    for infra in ("nats", "postgres", "clickhouse"):
        assert svcs[infra]["healthcheck"]["test"] and svcs[infra]["restart"] == "unless-stopped"
        assert any(":/" in v and not v.startswith("./") for v in svcs[infra]["volumes"]), infra
    assert svcs["proxy"]["ports"] == ["8080:8080"]
    assert "ports" not in svcs["gateway"]
    assert "tools" in svcs["cli"]["profiles"]


def test_compose_nats_has_jetstream_with_fsync_on_every_write() -> None:
    nats = _compose()["services"]["nats"]
    assert "./deploy/compose/nats.conf:/etc/nats/nats.conf:ro" in nats["volumes"]
    conf = (COMPOSE_DIR / "nats.conf").read_text()
    block = re.search(r"jetstream\s*\{([^}]*)\}", conf)
    assert block and re.search(r"^\s*sync_interval:\s*always\s*$", block.group(1), re.M)
    assert re.search(r"^\s*store_dir:\s*/data\s*$", block.group(1), re.M)


def test_compose_gives_the_master_key_to_its_holders_only() -> None:
    svcs = _compose()["services"]
    holders = {n for n, s in svcs.items() if any("master-key.env" in f for f in s.get("env_file", []))}
    assert holders == MASTER_KEY_HOLDERS
    for name in ("stratus.env", "secrets.env.example", "master-key.env.example"):
        assert (COMPOSE_DIR / name).is_file()
    ignored_by_git = subprocess.run(
        ["git", "check-ignore", "deploy/compose/secrets.env", "deploy/compose/master-key.env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ignored_by_git.stdout.split() == ["deploy/compose/secrets.env", "deploy/compose/master-key.env"]
    assert "MASTER_KEY" not in (COMPOSE_DIR / "stratus.env").read_text()
    assert "PASSWORD" not in (COMPOSE_DIR / "stratus.env").read_text()


# --- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize("image", IMAGES)
def test_every_image_has_a_dockerfile_and_build_context(image: str) -> None:
    dockerfile = DOCKER_DIR / image / "Dockerfile"
    text = dockerfile.read_text()
    package = f"stratus-{image}"
    assert f"uv sync --frozen --no-dev --package {package} --no-editable" in text
    assert "--extra" not in text and "--all-extras" not in text  # chDB is metrics' extra `embedded`
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms[-1] == "python:3.11-slim" and "python:3.11-slim" in froms[:-1]  # multi-stage
    assert re.search(r"^USER 10001", text, re.M)
    assert ("HEALTHCHECK" in text) == (image != "cli")
    if image in services.BY_NAME or image == "metrics":
        assert f'"python", "-m", "stratus_{image}"' in text
    if image != "metrics" or METRICS_PRESENT:
        member = ROOT / ("libs/cli" if image == "cli" else f"services/{image}")
        assert tomllib.loads((member / "pyproject.toml").read_text())["project"]["name"] == package
    compose = _compose()["services"].get(image)
    assert compose and (ROOT / compose["build"]["context"]).resolve() == ROOT


@pytest.mark.skipif(not METRICS_PRESENT, reason="services/metrics is not on this branch yet")
def test_metrics_keeps_chdb_out_of_its_production_image() -> None:
    project = tomllib.loads((ROOT / "services/metrics/pyproject.toml").read_text())["project"]
    assert not any(d.lower().startswith("chdb") or "[chdb]" in d.lower() for d in project["dependencies"])
    assert any(d.lower().startswith("chdb") for d in project["optional-dependencies"]["embedded"])


# --- build contexts ------------------------------------------------------------------------------

FORBIDDEN = re.compile(
    r"(^|/)(\.venv|\.stratus|\.git|bench-results|node_modules|__pycache__)(/|$)"
    r"|(^|/)credentials$|(^|/)master\.key|\.db$|(^|/)\.env$|(^|/)\.env\.(?!example$)|(^|/)(secrets|master-key)\.env$"
)


def test_the_build_context_of_this_checkout_carries_no_credentials() -> None:
    sent = set(context_files(ROOT, (ROOT / ".dockerignore").read_text()))
    assert not [f for f in sent if FORBIDDEN.search(f)]
    assert not [f for f in sent if f.endswith(".env.example")]  # nothing of the kind is needed
    # ... and still everything `uv sync --package` needs: the lock and every workspace member.
    assert {"pyproject.toml", "uv.lock"} <= sent
    for member in [ROOT / "contracts", *ROOT.glob("libs/*"), *ROOT.glob("services/*")]:
        rel = member.relative_to(ROOT).as_posix()
        assert f"{rel}/pyproject.toml" in sent
        assert any(f.startswith(f"{rel}/src/") and f.endswith(".py") for f in sent), rel
    # The metrics image carries the ClickHouse schema it applies at start-up.
    schema = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "deploy/clickhouse").glob("*.sql"))
    assert schema and set(schema) <= sent
    dockerfile = (ROOT / "deploy/docker/metrics/Dockerfile").read_text()
    assert "COPY --from=build /src/deploy/clickhouse" in dockerfile


def test_a_developers_secrets_anywhere_in_the_tree_stay_out(tmp_path: Path) -> None:
    planted = [
        ".stratus/credentials",
        ".stratus/master.key",
        ".stratus/master.key.previous",
        ".stratus/projects-live.db",
        ".venv/lib/python3.11/site-packages/x.py",
        ".git/config",
        ".env",
        "deploy/compose/secrets.env",
        "deploy/compose/master-key.env",
        "bench-results/run.json",
        "services/projects/.stratus/credentials",
        "services/projects/master.key",
        "services/projects/src/stratus_projects/__pycache__/x.cpython-311.pyc",
        "libs/kit/.venv/bin/python",
        "libs/kit/local.db",
        "libs/kit/.env",
        "libs/kit/.env.local",
        "services/gateway/node_modules/x/index.js",
        "services/webhooks/credentials",
    ]
    for rel in [*planted, "pyproject.toml", "services/projects/src/stratus_projects/x.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    sent = set(context_files(tmp_path, (ROOT / ".dockerignore").read_text()))
    assert sent == {"pyproject.toml", "services/projects/src/stratus_projects/x.py"}
    assert all(FORBIDDEN.search(p) for p in planted)


def test_dockerignore_rules_are_dockers() -> None:
    rules = read_patterns("*.db\n!keep.db\n**/.venv\nsrc/*.tmp\n")
    assert ignored("a.db", rules) and not ignored("x/a.db", rules)  # anchored at the root
    assert not ignored("keep.db", rules)  # the last match wins
    assert ignored("a/b/.venv/bin/python", rules) and ignored(".venv", rules)
    assert ignored("src/x.tmp", rules) and not ignored("src/y/x.tmp", rules)


# --- Kubernetes ---------------------------------------------------------------------------------

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace"}
WORKLOADS = {"Deployment", "StatefulSet"}


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] in WORKLOADS | {"Job"}:
        return [obj["spec"]["template"]["spec"]]
    return []


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return patch


def render(directory: Path) -> list[dict[str, Any]]:
    """The kustomize build of `directory`, for the subset of kustomize these overlays use
    (resources, namespace, images, strategic-merge patches of ConfigMaps); anything else fails."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(spec) <= KUSTOMIZATION_KEYS, (
        f"{directory}: not modelled here: {set(spec) - KUSTOMIZATION_KEYS}"
    )
    objects: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = directory / resource
        objects += render(path) if path.is_dir() else _load(path)
    objects = copy.deepcopy(objects)
    for patch_ref in spec.get("patches", []):
        assert set(patch_ref) == {"path"}
        for patch in _load(directory / patch_ref["path"]):
            assert patch["kind"] == "ConfigMap", "only ConfigMap patches are modelled (a map merge)"
            (target,) = [
                o
                for o in objects
                if o["kind"] == "ConfigMap" and o["metadata"]["name"] == patch["metadata"]["name"]
            ]
            target["data"] = _merge(target["data"], patch["data"])
    for image in spec.get("images", []):
        assert set(image) == {"name", "newName", "newTag"}
        for obj in objects:
            for pod in _pod_specs(obj):
                for container in pod["containers"]:
                    if container["image"].split(":")[0] == image["name"]:
                        container["image"] = f"{image['newName']}:{image['newTag']}"
    if namespace := spec.get("namespace"):
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


PRODUCTION = K8S / "overlays" / "production"
BASE_FILES = sorted((K8S / "base").glob("*.yaml"))
MANIFESTS = [p for p in BASE_FILES if p.name != "kustomization.yaml"] + [
    K8S / "bootstrap-job.yaml",
    PRODUCTION / "namespace.yaml",
]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(K8S).as_posix())
def test_every_manifest_is_valid_kubernetes(path: Path) -> None:
    for obj in _load(path):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_production_overlay_renders_to_valid_kubernetes() -> None:
    objects = render(PRODUCTION)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"stratus"}
    images = {c["image"] for o in objects for p in _pod_specs(o) for c in p["containers"]}
    assert all(i.startswith("registry.example.com/stratus/") for i in images), images


def test_our_rendering_matches_kubectl_kustomize_where_kubectl_is_installed() -> None:
    # A cross-check of `render` itself; the validation above does not depend on it.
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the render above is checked without it)")
    done = subprocess.run([kubectl, "kustomize", str(PRODUCTION)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    def key(o: dict[str, Any]) -> tuple[str, str]:
        return o["kind"], o["metadata"]["name"]

    theirs = sorted((d for d in yaml.safe_load_all(done.stdout) if d), key=key)
    assert theirs == sorted(render(PRODUCTION), key=key)


def test_the_strict_validator_refuses_what_it_should() -> None:
    (deployment,) = [o for o in _load(K8S / "base" / "identity.yaml") if o["kind"] == "Deployment"]
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def _workloads(objects: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Every Deployment and StatefulSet of the production overlay, by process name."""
    found = {}
    for obj in render(PRODUCTION) if objects is None else objects:
        if obj["kind"] in WORKLOADS:
            name = obj["metadata"]["name"].removeprefix("stratus-")
            assert name not in found, f"two workloads for {name}"
            found[name] = obj
    return found


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are modelled"
    return selector["matchLabels"].items() <= labels.items()


def test_every_process_has_a_hardened_workload_with_probes_and_resources() -> None:
    workloads = _workloads()
    assert sorted(workloads) == PROCESSES
    for name, workload in workloads.items():
        assert workload["kind"] == ("StatefulSet" if name in STATEFUL else "Deployment"), name
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert container.get(probe), (name, probe)
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
                resources["limits"]
            )
            security = container["securityContext"]
            assert (
                security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
            )
            assert security["capabilities"]["drop"] == ["ALL"] and security["runAsNonRoot"] is True
    gateway = workloads["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for name in set(PROCESSES) - {"gateway"}:
        container = workloads[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["exec"]["command"][:4] == [
            "python",
            "-m",
            "stratus_kit.probe",
            name,
        ]
        assert "--live" in container["livenessProbe"]["exec"]["command"]


def test_every_workload_but_deployments_has_two_replicas_and_a_disruption_budget() -> None:
    objects = render(PRODUCTION)
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    covered = []
    for name, workload in _workloads(objects).items():
        spec = workload["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert _selects(spec["selector"], labels), name
        covering = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        covered += covering
        if name in K8S_SINGLE_REPLICA:
            # A budget over a single replica would block every node drain.
            assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate", name
            assert not covering, name
        else:
            assert spec["replicas"] >= 2, name
            update = spec.get("updateStrategy" if workload["kind"] == "StatefulSet" else "strategy", {})
            assert update.get("type", "RollingUpdate") == "RollingUpdate", name
            assert [b["metadata"]["name"] for b in covering] == [workload["metadata"]["name"]], name
            assert covering[0]["spec"]["minAvailable"] == 1, name
    assert len(covered) == len(budgets)  # each budget covers one workload: none over nothing


def test_audit_is_a_stateful_set_with_a_volume_and_a_replica_id_per_pod() -> None:
    objects = render(PRODUCTION)
    audit = _workloads(objects)["audit"]
    spec = audit["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    (headless,) = [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == spec["serviceName"]
    ]
    assert headless["spec"]["clusterIP"] == "None"
    assert _selects({"matchLabels": headless["spec"]["selector"]}, spec["template"]["metadata"]["labels"])
    (claim,) = spec["volumeClaimTemplates"]
    assert (
        claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        and claim["spec"]["resources"]["requests"]["storage"]
    )
    pod = spec["template"]["spec"]
    # The data dir is the claim, not a volume of the pod (an emptyDir would lose it, a shared
    # volume would mix the replicas' files).
    assert claim["metadata"]["name"] not in {v["name"] for v in pod.get("volumes", [])}
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert mounts[configmap["data"]["STRATUS_DATA_DIR"]] == claim["metadata"]["name"] == "data"
    (replica_id,) = [e for e in container["env"] if e["name"] == "STRATUS_REPLICA_ID"]
    assert replica_id == {
        "name": "STRATUS_REPLICA_ID",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    # Its pods' names (`<name>-<ordinal>`) are valid replica ids.
    for ordinal in range(spec["replicas"]):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", f"{audit['metadata']['name']}-{ordinal}")


def test_gateway_is_exposed_scaled_and_the_only_thing_reachable_from_outside() -> None:
    objects = render(PRODUCTION)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for kind in ("Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert (kind, "stratus-gateway") in kinds
    budgets = {o["metadata"]["name"] for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert budgets == {f"stratus-{n}" for n in PROCESSES if n not in K8S_SINGLE_REPLICA}
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert any(
        set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and "egress" not in p["spec"] for p in deny
    )
    admitting = [p for p in policies if p["spec"].get("ingress")]
    assert [p["spec"]["podSelector"] for p in admitting] == [
        {"matchLabels": {"app.kubernetes.io/name": "stratus-gateway"}}
    ]


def test_secrets_are_referenced_by_name_and_the_master_key_only_by_its_holders() -> None:
    objects = [*render(PRODUCTION), *_load(K8S / "bootstrap-job.yaml")]
    assert not [o for o in objects if o["kind"] == "Secret"]
    referenced: dict[str, set[str]] = {}
    for obj in objects:
        for pod in _pod_specs(obj):
            for container in pod["containers"]:
                for source in container.get("envFrom", []):
                    if "secretRef" in source:
                        referenced.setdefault(source["secretRef"]["name"], set()).add(obj["metadata"]["name"])
                assert not [
                    e for e in container.get("env", []) if "SECRET" in e["name"] or "PASSWORD" in e["name"]
                ]
    assert set(referenced) == {"stratus-master-key", "stratus-postgres", "stratus-clickhouse"}
    assert referenced["stratus-master-key"] == {f"stratus-{n}" for n in MASTER_KEY_HOLDERS}
    readme = (K8S / "README.md").read_text()
    for name in [*referenced, "stratus-tls"]:
        assert f"kubectl -n stratus create secret generic {name}" in readme or name == "stratus-tls"
    assert "kubectl -n stratus create secret tls stratus-tls" in readme


def test_nats_values_run_three_servers_with_jetstream_on_disk_and_sync_always() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    config = values["config"]
    assert config["cluster"] == {"enabled": True, "replicas": 3}
    assert config["jetstream"]["enabled"] and config["jetstream"]["fileStore"]["pvc"]["enabled"]
    assert config["jetstream"]["merge"]["sync_interval"] == "always"
    (configmap,) = [o for o in render(PRODUCTION) if o["kind"] == "ConfigMap"]
    assert configmap["data"]["STRATUS_STREAM_REPLICAS"] == "3"


# --- every variable set is documented ----------------------------------------------------------

VARIABLE = re.compile(r"\b(STRATUS_[A-Z0-9_]+)")


def _readme_variables() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Configuration") :]
    table = table[: table.index("\n## ", 3)] if "\n## " in table[3:] else table
    return {
        m
        for line in table.splitlines()
        if line.startswith("| `")
        for m in VARIABLE.findall(line.split("|")[1])
    }


def _set_variables() -> dict[str, str]:
    found: dict[str, str] = {}
    for env_file in [*COMPOSE_DIR.glob("*.env"), *COMPOSE_DIR.glob("*.env.example")]:
        for line in env_file.read_text().splitlines():
            if (m := re.match(r"^(STRATUS_[A-Z0-9_]+)=", line.strip())) is not None:
                found[m.group(1)] = env_file.name
    for name, svc in _compose()["services"].items():
        for var in svc.get("environment", {}):
            if var.startswith("STRATUS_"):
                found[var] = f"docker-compose.yml: {name}"
    for dockerfile in DOCKER_DIR.glob("*/Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("ENV "):
                found |= {
                    v: str(dockerfile.relative_to(ROOT)) for v in re.findall(r"(STRATUS_[A-Z0-9_]+)=", line)
                }
    for obj in [*render(PRODUCTION), *_load(K8S / "bootstrap-job.yaml")]:
        if obj["kind"] == "ConfigMap":
            found |= {
                k: f"ConfigMap {obj['metadata']['name']}" for k in obj["data"] if k.startswith("STRATUS_")
            }
        for pod in _pod_specs(obj):
            for container in pod["containers"]:
                found |= {
                    e["name"]: obj["metadata"]["name"]
                    for e in container.get("env", [])
                    if e["name"].startswith("STRATUS_")
                }
    return found


def test_every_stratus_variable_the_deploy_files_set_is_in_the_readme_table() -> None:
    documented = _readme_variables()
    assert "STRATUS_MASTER_KEY" in documented and "STRATUS_STREAM_REPLICAS" in documented
    missing = {var: where for var, where in _set_variables().items() if var not in documented}
    assert not missing
