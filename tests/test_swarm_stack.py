"""The swarm stack is docker-compose.yml in the stack dialect, not a second lab.

Rendered through the real `docker compose config` (needs the Compose v2 plugin, no
engine) and checked by `docker stack config` (the stack loader of the docker CLI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadlab import stack

ROOT = Path(__file__).resolve().parents[1]
OVERRIDE: dict[str, Any] = yaml.safe_load(
    (ROOT / "docker-compose.swarm.yml").read_text().replace("!override", ""))
# What the override may change, per service: nothing about images, commands, limits or
# healthchecks, which come from docker-compose.yml alone.
ALLOWED = {"environment", "volumes", "configs", "deploy"}

pytestmark = pytest.mark.requires("compose")


def compose_only() -> dict[str, Any]:
    done = subprocess.run(
        ["docker", "compose", "--project-directory", str(ROOT), "--env-file", "/dev/null",
         "config", "--format", "json"], capture_output=True, text=True, timeout=60,
        check=True)
    config: dict[str, Any] = json.loads(done.stdout)
    return config


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    config = stack.compose_config(ROOT, ["/dev/null"], {"PATH": "/usr/bin:/bin"})
    return stack.stack_file(config)


def test_the_override_touches_only_swarm_matters() -> None:
    for name, svc in OVERRIDE["services"].items():
        assert set(svc) <= ALLOWED, (name, set(svc) - ALLOWED)
        assert set(svc.get("deploy", {})) <= {"placement"}, name
        for key in svc.get("environment", {}):
            assert key in {"LOADLAB_BIND", "DNS_SD_PREFIX", "DATA_SOURCE_NAME"}, (name, key)


def test_every_default_service_is_in_the_stack(rendered: dict[str, Any]) -> None:
    compose = compose_only()["services"]
    default = {name for name, svc in compose.items() if not svc.get("profiles")}
    assert set(rendered["services"]) == default


@pytest.mark.parametrize("key", ["image", "command", "entrypoint", "user", "read_only",
                                 "cap_drop", "healthcheck"])
def test_same_as_compose(rendered: dict[str, Any], key: str) -> None:
    compose = compose_only()["services"]
    for name, svc in rendered["services"].items():
        assert svc.get(key) == compose[name].get(key), (name, key)


def test_limits_are_the_compose_limits(rendered: dict[str, Any]) -> None:
    compose = compose_only()["services"]
    for name, svc in rendered["services"].items():
        want = compose[name].get("deploy", {}).get("resources", {}).get("limits", {})
        got = svc["deploy"].get("resources", {}).get("limits", {})
        assert {k: float(v) for k, v in got.items()} == {k: float(v) for k, v in want.items()}
    assert rendered["services"]["fastapi"]["deploy"]["resources"]["limits"]["cpus"] == "1"
    assert rendered["services"]["locust-worker"]["deploy"]["replicas"] == 2


def test_environment_is_compose_plus_the_override(rendered: dict[str, Any]) -> None:
    compose = compose_only()["services"]
    for name, svc in rendered["services"].items():
        extra = {key: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)  # as with no .env
                 for key, value in OVERRIDE["services"].get(name, {}).get(
                     "environment", {}).items()}
        assert svc.get("environment", {}) == {**compose[name].get("environment", {}),
                                               **extra}, name


def test_ports_are_the_compose_ports_in_host_mode(rendered: dict[str, Any]) -> None:
    compose = compose_only()["services"]
    for name, svc in rendered["services"].items():
        want = {(int(p["target"]), int(p["published"])) for p in compose[name].get("ports", [])}
        got = {(p["target"], p["published"]) for p in svc.get("ports", [])}
        assert got == want and all(p["mode"] == "host" for p in svc.get("ports", [])), name
    master = {p["target"] for p in rendered["services"]["locust-master"]["ports"]}
    assert master == {8089, 5557}


def test_no_bind_mount_and_configs_named_by_content(rendered: dict[str, Any]) -> None:
    for name, svc in rendered["services"].items():
        for volume in svc.get("volumes", []):
            assert volume["type"] in ("volume", "tmpfs"), (name, volume)
    compose = compose_only()["services"]
    # Every file compose bind-mounts reaches the swarm as a config at the same place.
    for name, svc in compose.items():
        if name not in rendered["services"]:
            continue
        targets = {c["target"] for c in rendered["services"][name].get("configs", [])}
        for volume in svc.get("volumes", []):
            if volume["type"] != "bind":
                continue
            source = Path(volume["source"])
            files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() \
                else [source]
            for path in files:
                if path.name.startswith("Dockerfile"):
                    continue  # the image's build recipe, not read at run time
                inside = volume["target"] + str(path)[len(str(source)):]
                assert inside in targets, (name, inside)
    for cfg in rendered["configs"].values():
        assert cfg["name"].startswith("loadlab_") and Path(cfg["file"]).is_file()


def test_placement_by_node_label() -> None:
    assert stack.constraint_for("fastapi", {"sut", "load"}, "auto") == [
        "node.labels.loadlab.role == sut"]
    assert stack.constraint_for("locust-worker", {"sut", "load"}, "auto") == [
        "node.labels.loadlab.role == load"]
    assert stack.constraint_for("fastapi", set(), "auto") == []  # one unlabelled node
    assert stack.constraint_for("prometheus", {"sut"}, "labels") == []
    with pytest.raises(stack.StackError, match=r"--label-add loadlab\.role=load"):
        stack.constraint_for("locust-worker", {"sut"}, "labels")


def test_docker_stack_config_accepts_it(rendered: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(rendered))
    done = subprocess.run(["docker", "stack", "config", "-c", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "endpoint_mode: dnsrr" in done.stdout


def test_prometheus_names_every_task_in_a_swarm(tmp_path: Path) -> None:
    """The entrypoint's rewrite, run by sh on the real file: tasks.<service> in a swarm."""
    config = tmp_path / "etc"
    (config / "rules").mkdir(parents=True)
    shutil.copy(ROOT / "prometheus" / "prometheus.yml", config / "prometheus.yml")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "prometheus").write_text("#!/bin/sh\nexit 0\n")
    (fake / "prometheus").chmod(0o755)
    for prefix, want in (("tasks.", "tasks.fastapi"), ("", "fastapi")):
        data = tmp_path / f"data{prefix}"
        data.mkdir()
        subprocess.run(["sh", str(ROOT / "prometheus" / "entrypoint.sh")], check=True,
                       timeout=30, env={"PATH": f"{fake}:/usr/bin:/bin",
                                        "DNS_SD_PREFIX": prefix,
                                        "PROMETHEUS_CONFIG_DIR": str(config),
                                        "PROMETHEUS_DATA_DIR": str(data)})
        rendered = yaml.safe_load((data / "prometheus.yml").read_text())
        names = rendered["scrape_configs"][0]["dns_sd_configs"][0]["names"]
        assert names[0] == want and len(names) == 5, names  # with the app profile's


def test_no_password_file_volume_in_a_swarm(rendered: dict[str, Any]) -> None:
    """compose's postgres-auth volume is one node's memory: in a swarm every reader of the
    database has POSTGRES_PASSWORD instead (which `deploy` demands)."""
    assert "postgres-auth" not in rendered.get("volumes", {})
    for name, svc in rendered["services"].items():
        assert all(v.get("source") != "postgres-auth" for v in svc.get("volumes", [])), name
    exporter = rendered["services"]["postgres-exporter"]["environment"]
    assert exporter["DATA_SOURCE_NAME"].startswith("postgresql://loadlab:")


def synthetic(**env: dict[str, str]) -> dict[str, Any]:
    return {"services": {name: {"environment": values} for name, values in env.items()}}


GOOD = {"locust-master": {"LOCUST_WEB_PASSWORD": "pw"},
        "postgres": {"POSTGRES_PASSWORD": "pw"},
        "grafana": {"GF_SECURITY_ADMIN_PASSWORD": "pw"}}


@pytest.mark.parametrize(("service", "variable", "value", "knob"), [
    ("locust-master", "LOCUST_WEB_PASSWORD", "", "LOCUST_WEB_PASSWORD"),
    ("postgres", "POSTGRES_PASSWORD", "", "POSTGRES_PASSWORD"),
    ("grafana", "GF_SECURITY_ADMIN_PASSWORD", "", "GRAFANA_ADMIN_PASSWORD"),
    ("grafana", "GF_SECURITY_ADMIN_PASSWORD", "admin", "GRAFANA_ADMIN_PASSWORD"),
])
def test_deploy_refuses_an_open_door(service: str, variable: str, value: str,
                                     knob: str) -> None:
    """Every published port binds every interface in a swarm: Grafana's admin password is
    demanded like the others (else Grafana parks unhealthy and deploy waits 300 s)."""
    env = {name: dict(values) for name, values in GOOD.items()}
    env[service][variable] = value
    with pytest.raises(stack.StackError, match=knob):
        stack.Stack(root=ROOT).check_password(synthetic(**env))
    stack.Stack(root=ROOT).check_password(synthetic(**GOOD))


def test_the_stack_file_with_the_passwords_is_private(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`deploy` writes the rendered stack (passwords included) readable by its owner
    alone, whatever the umask; what `docker stack deploy` reads is that file."""
    seen: dict[str, int] = {}
    rendered_stack = {"version": "3.9", "services": {
        "postgres": {"image": "x", "environment": {"POSTGRES_PASSWORD": "s3cret"}}}}

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        path = Path(cmd[cmd.index("-c") + 1])
        seen["mode"] = path.stat().st_mode & 0o777
        seen["dir"] = path.parent.stat().st_mode & 0o777
        assert "s3cret" in path.read_text()
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(stack, "require_manager", lambda: None)
    monkeypatch.setattr(stack, "_run", fake_run)
    lab = stack.Stack(root=tmp_path)
    monkeypatch.setattr(lab, "render", lambda *a, **k: rendered_stack)
    monkeypatch.setattr(lab, "check_images", lambda _: None)
    monkeypatch.setattr(lab, "check_password", lambda _: None)
    monkeypatch.setattr(lab, "wait_healthy", lambda _: None)
    old = os.umask(0o022)
    try:
        lab.deploy()
    finally:
        os.umask(old)
    assert seen == {"mode": 0o600, "dir": 0o700}
