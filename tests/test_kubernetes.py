"""deploy/kubernetes: every manifest valid against the Kubernetes schemas (offline, pinned
version), the generated files in sync, and the same lab as docker-compose.yml."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.system_tools import missing, require

from loadlab.dashboards import kube

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"  # pinned: the schemas kubernetes-validate ships for it
# Custom resources have no schema among Kubernetes' own: checked by shape below.
CRDS = {("monitoring.coreos.com/v1", "PodMonitor")}


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return data


def generated_configmaps(directory: Path) -> list[dict[str, Any]]:
    """What the base's configMapGenerator produces (kustomize itself cannot run here)."""
    made = []
    for generator in kustomization(directory).get("configMapGenerator", []):
        data = {Path(f).name: (directory / f).read_text() for f in generator["files"]}
        made.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": generator["name"]}, "data": data})
    return made


def resources(directory: Path = KUBE) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for entry in kustomization(directory)["resources"]:
        path = (directory / entry).resolve()
        docs += resources(path) if path.is_dir() else load(path)
    return docs + generated_configmaps(directory)


ALL = resources(KUBE / "operator")  # the base plus the operator's extras


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in ALL if doc["kind"] == kind}


def test_generated_files_match_the_code_and_prometheus_dir() -> None:
    assert kube.stale() == [], "run `loadlab dashboards`"


@pytest.mark.parametrize("doc", [d for d in ALL if (d["apiVersion"], d["kind"]) not in CRDS],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_valid_against_the_kubernetes_schemas(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_crds_are_the_only_unchecked_kinds() -> None:
    kinds = {(d["apiVersion"], d["kind"]) for d in ALL}
    assert kinds & CRDS == CRDS
    monitor = by_kind("PodMonitor")["loadlab"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = {name for name, deploy in by_kind("Deployment").items()
               if selector.items() <= deploy["spec"]["template"]["metadata"]["labels"].items()}
    assert scraped == {"fastapi", "flask", "locust-master"}
    ports = {p["port"] for p in monitor["spec"]["podMetricsEndpoints"]}
    for name in scraped:
        (container,) = by_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"]
        assert ports & {p["name"] for p in container["ports"]}, name


def test_dashboards_are_configmaps_for_the_grafana_sidecar() -> None:
    maps = {name: cm for name, cm in by_kind("ConfigMap").items()
            if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"}
    assert len(maps) == 3
    for cm in maps.values():
        (text,) = cm["data"].values()
        assert json.loads(text)["uid"].startswith("loadlab-")


def compose() -> dict[str, Any]:
    require("compose", missing("compose"))
    done = subprocess.run(
        ["docker", "compose", "--project-directory", str(ROOT), "--env-file", "/dev/null",
         "config", "--format", "json"], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin"}, check=True)
    services: dict[str, Any] = json.loads(done.stdout)["services"]
    return services


MEMORY = re.compile(r"(\d+)(Ki|Mi|Gi)?")


def memory_bytes(text: str) -> int:
    match = MEMORY.fullmatch(str(text))
    assert match, text
    return int(match[1]) * {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}[match[2]]


def seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)s", text)
    assert match, text
    return int(match[1])


LAB = ("fastapi", "flask", "locust-master", "locust-worker", "prometheus")


@pytest.mark.parametrize("name", LAB)
def test_same_image_command_ports_env_limits_probe_as_compose(name: str) -> None:
    svc = compose()[name]
    pod = by_kind("Deployment")[name]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == svc["image"]
    assert container["args"] == svc["command"]
    assert container.get("command") == svc.get("entrypoint")
    assert {p["containerPort"] for p in container.get("ports", [])} == {
        int(p["target"]) for p in svc.get("ports", [])} | {int(p) for p in svc.get("expose", [])}
    # The database's password: a Secret here, compose's file of the password in force
    # there (the URL without one in both, as compose renders it with no .env).
    kube_env = {e["name"]: e["value"].replace("$(POSTGRES_PASSWORD)", "")
                for e in container.get("env", []) if "value" in e}
    compose_env = {k: v for k, v in svc.get("environment", {}).items()
                   if k != "LOADLAB_DB_PASSWORD_FILE"}
    assert kube_env == compose_env
    limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
    got = container.get("resources", {}).get("limits", {})
    assert float(got.get("cpu", 0)) == float(limits.get("cpus", 0))
    assert memory_bytes(got.get("memory", 0)) == int(limits.get("memory", 0))
    check, probe = svc["healthcheck"], container["readinessProbe"]
    if check["test"][1] == "wget":
        url = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\S*)", check["test"][-1])
        assert url and probe["httpGet"] == {"path": url[2], "port": int(url[1])}
    else:
        assert probe["exec"]["command"] == check["test"][1:]
    assert probe["periodSeconds"] == seconds(check["interval"])
    assert probe["timeoutSeconds"] == seconds(check["timeout"])
    assert probe["failureThreshold"] == check["retries"]
    security = container["securityContext"]
    assert security["capabilities"]["drop"] == svc["cap_drop"] == ["ALL"]
    assert security["allowPrivilegeEscalation"] is False
    assert security.get("readOnlyRootFilesystem", False) == svc.get("read_only", False)
    if "user" in svc:
        assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" \
            == svc["user"]


def test_workers_replicas_and_placement_keep_load_and_services_apart() -> None:
    deployments = by_kind("Deployment")
    assert deployments["locust-worker"]["spec"]["replicas"] == int(
        compose()["locust-worker"]["deploy"]["replicas"])
    for name, role, other in (("fastapi", "sut", "load"), ("flask", "sut", "load"),
                              ("locust-worker", "load", "sut")):
        spec = deployments[name]["spec"]["template"]
        assert spec["metadata"]["labels"]["loadlab.io/role"] == role
        affinity = spec["spec"]["affinity"]
        (node,) = affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert node["preference"]["matchExpressions"] == [
            {"key": "loadlab.role", "operator": "In", "values": [role]}]
        (away,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert away["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
            "loadlab.io/role": other}


def test_prometheus_mounts_every_generated_file_where_compose_has_it() -> None:
    pod = by_kind("Deployment")["prometheus"]["spec"]["template"]["spec"]
    (config,) = [v for v in pod["volumes"] if v["name"] == "config"]
    items = {i["key"]: i["path"] for i in config["configMap"]["items"]}
    assert items == kube.PROMETHEUS_FILES
    generated = {c["metadata"]["name"]: c for c in generated_configmaps(KUBE)}
    assert set(generated["prometheus-config"]["data"]) == set(items)
    assert config["configMap"]["name"] == "prometheus-config"
    # The database's seed is the one seed.sql, mounted where compose mounts it.
    assert set(generated["postgres-seed"]["data"]) == {"10-seed.sql"}
    pg = by_kind("Deployment")["postgres"]["spec"]["template"]["spec"]
    (seed,) = [v for v in pg["volumes"] if v["name"] == "seed"]
    assert seed["configMap"]["name"] == "postgres-seed"
    assert "/docker-entrypoint-initdb.d/10-seed.sql" in " ".join(
        compose()["postgres"]["volumes"][i]["target"]
        for i in range(len(compose()["postgres"]["volumes"])))
    # Headless Services: `fastapi` resolves to every pod, as the lab's dns_sd_configs need.
    for name in ("fastapi", "flask"):
        assert by_kind("Service")[name]["spec"]["clusterIP"] == "None"


def test_the_database_trusts_nobody_and_admits_only_the_services() -> None:
    """A cluster network is not loopback: a password from a Secret the user makes (none is
    in the repository), and a NetworkPolicy admitting only the services to 5432."""
    pg = by_kind("Deployment")["postgres"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in pg["env"]}
    assert "POSTGRES_HOST_AUTH_METHOD" not in env
    assert "trust" not in json.dumps(pg)
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "loadlab-postgres", "key": "password"}
    assert "--auth-host=scram-sha-256" in env["POSTGRES_INITDB_ARGS"]["value"]
    assert "Secret" not in {doc["kind"] for doc in ALL}  # made by the user, never committed
    users = set()
    for name, deploy in by_kind("Deployment").items():
        for container in deploy["spec"]["template"]["spec"]["containers"]:
            envs = [e["name"] for e in container.get("env", [])]
            if "DATABASE_URL" in envs and name != "postgres":
                users.add(name)
                url = next(e for e in container["env"] if e["name"] == "DATABASE_URL")
                assert "$(POSTGRES_PASSWORD)@" in url["value"], name
                assert envs.index("POSTGRES_PASSWORD") < envs.index("DATABASE_URL"), name
    assert users == {"fastapi", "flask"}
    policy = by_kind("NetworkPolicy")["postgres"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "postgres"}
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    (expr,) = peer["podSelector"]["matchExpressions"]
    assert set(expr["values"]) == users and expr["operator"] == "In"
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
