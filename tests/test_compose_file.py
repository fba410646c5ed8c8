"""docker-compose.yml and the Dockerfiles keep the lab's rules: Compose spec with a name,
pinned images, every knob in .env.example, loopback ports, healthchecks, non-root,
no extra privileges."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.system_tools import require

from loadlab import servers
from loadlab.dashboards.common import SERVICE_COLORS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# The lab's images are the targets of one Dockerfile: each stage's text by its name.
STAGES = dict(re.findall(r"^FROM \S+ AS ([\w-]+)\n(.*?)(?=^FROM |\Z)", DOCKERFILE,
                         re.M | re.S))
LAB_TARGETS = ("fastapi", "flask", "locust")


def test_compose_spec_shape() -> None:
    assert COMPOSE["name"] == "loadlab"
    assert "version" not in COMPOSE
    assert not re.search(r"^\s*container_name:", COMPOSE_TEXT, re.M)
    assert {"fastapi", "flask", "locust-master", "locust-worker", "prometheus",
            "grafana", "postgres", "postgres-exporter"} <= set(SERVICES)
    optional = {name for name, svc in SERVICES.items() if svc.get("profiles")}
    assert optional == set(VARIANTS) | {"app"}


def _option(command: list[str], name: str, default: str = "") -> str:
    return str(command[command.index(name) + 1]) if name in command else default


# The `variants` profile's services, each named as the registry names the framework on its
# worker class (servers.variant_name): Gunicorn's Uvicorn worker, gevent, and Granian for
# both apps.
VARIANTS = {servers.variant_name(fw, k): (fw, k) for fw, k in (
    ("fastapi", "uvicorn-worker"), ("flask", "gevent"),
    *((fw, "granian") for fw in servers.INTERFACES),
)}


def test_each_variant_is_its_framework_on_its_worker_class_everywhere() -> None:
    """A variant service runs what its name says, under a CPU limit, with the lab's side
    port for metrics, and is scraped, offered in Locust's form (with its URL for the
    master and the workers), labelled by the exporter and coloured on the dashboards."""
    sys.path.insert(0, str(ROOT / "locust"))
    import _exporter
    import _options

    scrape = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    (services_job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "services"]
    scraped = set(services_job["dns_sd_configs"][0]["names"])
    assert services_job["dns_sd_configs"][0]["port"] == 9000
    anchor = SERVICES["locust-master"]["environment"]
    targets, target_env = _options.TARGETS, _options.TARGET_ENV
    for name, (framework, klass) in VARIANTS.items():
        svc = SERVICES[name]
        command = [str(part) for part in svc["command"]]
        assert command[:2] == ["serve", framework], name
        assert _option(command, "--worker-class") == klass, name
        assert re.fullmatch(r"\$\{\w+_CPUS:-1\}", str(svc["deploy"]["resources"]["limits"]
                                                       ["cpus"])), name
        assert "9000" in [str(p) for p in svc["expose"]], name
        assert "--metrics" not in command, name  # Granian's own exporter would take 9090
        assert name in scraped and name in targets and name in _exporter.TARGET_LABELS
        env = target_env[name]
        assert anchor[env] == f"${{{env}:-http://{name}:8000}}", name
        assert SERVICES["locust-worker"]["environment"][env] == anchor[env], name
        assert name in SERVICE_COLORS, name
    # Granian's own metrics port (9090) is Prometheus's: the registry turns it off.
    for framework in servers.INTERFACES:
        from loadlab.serve import ServerConfig, build_command

        argv = build_command(ServerConfig(framework=framework,  # type: ignore[arg-type]
                                          worker_class="granian"))
        assert "--no-metrics" in argv and "--metrics-port" not in argv


def test_every_knob_is_documented_with_the_same_default() -> None:
    used = dict(re.findall(r"\$\{(\w+):-([^}]*)\}", COMPOSE_TEXT))
    documented = dict(re.findall(r"^(\w+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    assert set(used) <= set(documented), set(used) - set(documented)
    assert {k: v for k, v in used.items() if documented[k] != v} == {}


def test_images_pinned_and_overridable() -> None:
    for name in ("prometheus", "grafana", "postgres", "postgres-exporter"):
        image = SERVICES[name]["image"]
        match = re.fullmatch(r"\$\{\w+_IMAGE:-([\w./-]+):([\w.-]+)\}", image)
        assert match and match[2] not in ("latest", "main"), image
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base[1])
    assert "FROM ${PYTHON_IMAGE} AS base" in DOCKERFILE
    # Each image's stage; a builder stage (compiler inside) only where a wheel is lacking.
    assert {"base", "package", *LAB_TARGETS, "locust-wheels"} == set(STAGES)
    for name, build in (("fastapi", "fastapi"), ("flask", "flask"), ("locust-master", "locust")):
        assert SERVICES[name]["build"]["target"] == build
        assert SERVICES[name]["build"]["dockerfile"] == "Dockerfile"
        assert re.search(rf"^FROM base AS {build}$", DOCKERFILE, re.M)


def test_ports_bound_to_loopback_unless_widened() -> None:
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert port.startswith("${LOADLAB_BIND:-127.0.0.1}:"), (name, port)


LAB_IMAGE_SERVICES = {name for name, svc in SERVICES.items()
                      if str(svc.get("image", "")).startswith("loadlab/")}
# Where a dependent must not start before its dependency is healthy. Nowhere, today: the
# Locust master needs its targets only when a swarm starts, a worker retries its master,
# Grafana its datasource. Every such wait adds a healthcheck round to `up --wait`.
NEEDS_HEALTHY: set[tuple[str, str]] = set()


def test_every_service_has_a_healthcheck_on_the_shared_interval() -> None:
    for name, svc in SERVICES.items():  # YAML merge keys (<<:) are resolved on load
        check = svc["healthcheck"]
        assert check["test"][0] == "CMD", name  # no /bin/sh in between
        assert check["interval"] == "${HEALTHCHECK_INTERVAL:-20s}", name
        # One grace for all: a service starting on a busy machine is not failed early.
        assert check["start_period"] == "${HEALTHCHECK_START_PERIOD:-60s}", name
        # Compose refuses start_interval on Engines before 25, even as 0s or empty.
        assert "start_interval" not in check, name
        assert check["retries"] >= 3 and check["timeout"] == "3s", name


def test_lab_images_check_with_bash_alone() -> None:
    assert {"fastapi", "flask", "locust-master", "locust-worker"} <= LAB_IMAGE_SERVICES
    for name in LAB_IMAGE_SERVICES:
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[1:3] == ["bash", "/app/healthcheck.sh"], (name, test)
        assert re.fullmatch(r"(http://127\.0\.0\.1:\d+/\S*|tcp://[\w-]+:\d+)", test[3]), test
    for target in LAB_TARGETS:
        assert "COPY src/loadlab/healthcheck.sh /app/healthcheck.sh" in STAGES[target], target
    for target in LAB_TARGETS[:2]:  # the services' own HEALTHCHECK, for docker run
        text = STAGES[target]
        assert '["bash", "/app/healthcheck.sh", "http://127.0.0.1:8000/healthz"]' in text
        assert "--interval=20s" in text and "--start-period=60s" in text, target


def test_dependencies_wait_for_health_only_where_order_matters() -> None:
    for name, svc in SERVICES.items():
        for dep_name, dep in (svc.get("depends_on") or {}).items():
            wanted = ("service_healthy" if (name, dep_name) in NEEDS_HEALTHY
                      else "service_started")
            assert dep["condition"] == wanted, (name, dep_name)
    assert set(SERVICES["locust-worker"]["depends_on"]) == {"locust-master"}
    assert set(SERVICES["grafana"]["depends_on"]) == {"prometheus"}
    assert set(SERVICES["postgres-exporter"]["depends_on"]) == {"postgres"}


def test_hardening_and_non_root() -> None:
    for name, svc in SERVICES.items():
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert "cap_add" not in svc and not svc.get("privileged"), name  # nothing added back
    for target in LAB_TARGETS:
        assert re.search(r"^USER 10001$", STAGES[target], re.M), target  # uid of loadlab
    assert "LOADLAB_IN_CONTAINER=1" in STAGES["base"]
    for name in ("fastapi", "flask"):
        assert SERVICES[name]["command"][0] == "serve"
        assert SERVICES[name]["read_only"] is True


def test_grafana_is_anonymous_viewer_only() -> None:
    env = SERVICES["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"


def test_no_secret_in_the_repository_files() -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.match(r"^\w*PASSWORD=", line):
            assert line.endswith("="), line


# Keys and tokens by their well-known shapes (built from parts so this file holds none).
SECRET_SHAPES = re.compile("|".join([
    "-----BEGIN [A-Z ]*" + "PRIVATE KEY-----", "AKIA" + "[0-9A-Z]{16}",
    "gh[pousr]_" + "[A-Za-z0-9]{36}", "xox[abpr]-" + "[A-Za-z0-9-]{10,}",
    "sk_live_" + "[A-Za-z0-9]{16,}",
]))


@pytest.mark.requires("git")
def test_no_key_or_token_in_the_tracked_files() -> None:
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                            text=True, timeout=30, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    names = [n for n in listed.stdout.split("\0") if n]
    assert len(names) > 50
    found = [f"{name}: {m.group(0)[:12]}..." for name in names
             if (ROOT / name).is_file()
             for m in [SECRET_SHAPES.search((ROOT / name).read_bytes().decode("latin-1"))] if m]
    assert not found, found


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "compose", "--project-directory", str(ROOT), "--env-file", "/dev/null",
         "config", "--quiet"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **env},
        check=False,
    )


def test_compose_v2_accepts_the_file_and_rejects_a_non_numeric_cpu_count() -> None:
    if shutil.which("docker") is None:
        require("docker", "no docker CLI")
    elif subprocess.run(["docker", "compose", "version"], capture_output=True,
                        check=False).returncode != 0:
        require("docker", "Compose v2 (`docker compose`) is not installed")
    ok = _compose_config({})
    assert ok.returncode == 0, ok.stderr
    bad = _compose_config({"FASTAPI_CPUS": "two"})
    assert bad.returncode != 0
    # deploy.resources.limits.cpus: Compose's decoding error, a header then one line.
    lines = [line for line in bad.stderr.strip().splitlines() if line.strip()]
    assert len(lines) <= 2 and "limits.cpus" in lines[-1], bad.stderr


def test_grafana_provisioning_matches_the_mounts() -> None:
    grafana = SERVICES["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    provider = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "dashboards" / "loadlab.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert mounts["./grafana/dashboards"] == path
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/")
    assert (ROOT / "grafana" / "dashboards" / home.rsplit("/", 1)[1]).is_file()
    datasource = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" /
                                 "prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_database_in_compose() -> None:
    """One seed file for both runtimes, the major version of the offline build, the
    services pointed at it, every third-party service non-root."""
    pg = SERVICES["postgres"]
    assert re.fullmatch(r"\$\{POSTGRES_IMAGE:-postgres:15\.\d+-bookworm\}", pg["image"])
    assert "./src/loadlab/pgcluster/seed.sql:/docker-entrypoint-initdb.d/10-seed.sql:ro" \
        in pg["volumes"]
    assert pg["healthcheck"]["test"][1] == "pg_isready"
    assert pg["deploy"]["resources"]["limits"] == {"cpus": "${POSTGRES_CPUS:-1}",
                                                   "memory": "${POSTGRES_MEMORY:-1g}"}
    assert "FROM ${BASE_IMAGE}" in (ROOT / "postgres" / "Dockerfile.debian").read_text()
    for name in ("postgres", "postgres-exporter", "prometheus"):
        assert not str(SERVICES[name]["user"]).startswith("0"), name
    for name in LAB_IMAGE_SERVICES - {"locust-master", "locust-worker"}:
        assert SERVICES[name]["environment"]["DATABASE_URL"].startswith(
            "postgresql://loadlab:${POSTGRES_PASSWORD:-}@postgres:5432/loadlab"), name


def _require_compose_v2() -> None:
    if shutil.which("docker") is None:
        require("docker", "no docker CLI")
    elif subprocess.run(["docker", "compose", "version"], capture_output=True,
                        check=False).returncode != 0:
        require("docker", "Compose v2 (`docker compose`) is not installed")


def test_the_lab_images_are_built_never_pulled() -> None:
    """`loadlab/*` is no name the lab owns on a registry: without `pull_policy: build` a
    plain `docker compose up` first asks Docker Hub for it, and whoever owns that name
    there would run in the user's lab. Read back through Compose itself."""
    _require_compose_v2()
    done = subprocess.run(
        ["docker", "compose", "--project-directory", str(ROOT), "--env-file", "/dev/null",
         "--profile", "variants", "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
        check=False)
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    lab = {name for name, svc in services.items()
           if svc.get("build") or str(svc.get("image", "")).startswith("loadlab/")}
    assert lab == {"fastapi", "flask", *VARIANTS, "locust-master", "locust-worker"}
    for name in lab:
        assert services[name].get("build"), name
        assert services[name].get("pull_policy") == "build", name
    for name in set(services) - lab:  # third-party images come from their registries
        assert services[name].get("pull_policy") in (None, "missing"), name


def scripts_the_lab_runs() -> set[str]:
    """Every file the images or compose run or read as configuration, by repository path:
    bind mounts and swarm configs, the Dockerfiles and what they COPY, the CI scripts."""
    found: set[str] = set()
    for svc in SERVICES.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                found.add(source[2:])
    # The swarm file's configs ({file: ./path}; its !override tags are Compose's own YAML).
    found |= set(re.findall(r"\{file: \./(\S+)\}", (ROOT / "docker-compose.swarm.yml").read_text()))
    dockerfiles = ["Dockerfile", *(str(p.relative_to(ROOT)) for p in ROOT.glob("*/Dockerfile*"))]
    found |= set(dockerfiles)
    for name in dockerfiles:
        context = ROOT if name == "Dockerfile" else (ROOT / name).parent
        for src in re.findall(r"^COPY (?!--from)(\S+) ", (ROOT / name).read_text(), re.M):
            found.add(str((context / src).relative_to(ROOT)))
    found |= {str(p.relative_to(ROOT)) for p in (ROOT / ".ci").iterdir()}
    found |= {str(p.relative_to(ROOT)) for p in (ROOT / "deploy").rglob("*")
              if p.is_file() and p.suffix in (".sh", ".yml", ".yaml", ".json", ".sql")}
    expanded: set[str] = set()
    for path in found:  # a directory mount: every file under it
        full = ROOT / path
        expanded |= ({str(p.relative_to(ROOT)) for p in full.rglob("*") if p.is_file()}
                     if full.is_dir() else {path})
    return {path for path in expanded if "__pycache__" not in path}


@pytest.mark.requires("git")
def test_every_script_the_lab_runs_is_checked_out_with_lf() -> None:
    """A Windows clone (core.autocrlf=true) would check these out with CRLF, and busybox
    sh, bash and Prometheus's YAML then fail inside Linux containers."""
    paths = sorted(scripts_the_lab_runs())
    for needed in ("postgres/entrypoint.sh", "grafana/entrypoint.sh",
                   "prometheus/entrypoint.sh", "src/loadlab/healthcheck.sh", "Dockerfile",
                   "src/loadlab/pgcluster/seed.sql", "prometheus/prometheus.yml", ".ci/run"):
        assert needed in paths, needed
    done = subprocess.run(["git", "-C", str(ROOT), "check-attr", "eol", "text", "--", *paths],
                          capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    attrs: dict[str, dict[str, str]] = {}
    for line in done.stdout.splitlines():
        path, attr, value = line.rsplit(": ", 2)
        attrs.setdefault(path, {})[attr] = value
    wrong = {path: got for path, got in attrs.items()
             if got.get("eol") != "lf" or got.get("text") in ("unset", "unspecified")}
    assert not wrong, wrong
    # And what is committed is LF already (a CRLF blob would stay CRLF for some clients).
    for path in paths:
        assert b"\r\n" not in (ROOT / path).read_bytes(), path


# The images' Pythons: the official base's (Dockerfile's PYTHON_IMAGE) and the offline
# base's (Debian bookworm's python3, `make offline-images`); both on glibc 2.36.
IMAGE_GLIBC = (2, 36)
OFFLINE_PYTHON = (3, 11)
ARCHES = ("x86_64", "aarch64")


def image_pythons() -> list[tuple[int, int]]:
    base = re.search(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)\.", DOCKERFILE, re.M)
    assert base
    return [(int(base[1]), int(base[2])), OFFLINE_PYTHON]


def linux_tags(python: tuple[int, int], arch: str) -> set[Any]:
    """The wheel tags pip accepts on that Python, architecture and glibc."""
    from packaging import tags

    platforms = [f"manylinux_{IMAGE_GLIBC[0]}_{minor}_{arch}"
                 for minor in range(IMAGE_GLIBC[1], 4, -1)]
    platforms += [f"manylinux2014_{arch}"]
    if arch == "x86_64":
        platforms += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    platforms.append(f"linux_{arch}")
    return set(tags.cpython_tags(python, platforms=platforms)) | set(
        tags.compatible_tags(python, f"cp{python[0]}{python[1]}", platforms))


def image_requirements(name: str, python: tuple[int, int], arch: str) -> set[str]:
    """The packages requirements/NAME.txt installs on that Python and architecture."""
    from packaging.markers import Marker
    from packaging.utils import canonicalize_name

    env = {"python_version": f"{python[0]}.{python[1]}",
           "python_full_version": f"{python[0]}.{python[1]}.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": arch, "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    found = set()
    text = (ROOT / "requirements" / f"{name}.txt").read_text()
    for req, marker in re.findall(r"^([A-Za-z0-9._-]+)==\S+(?: ; (.*?))? \\$", text, re.M):
        if not marker or Marker(marker).evaluate(env):
            found.add(canonicalize_name(req))
    return found


def built_from_source(target: str) -> set[str]:
    """What the image's builder stage compiles (ARG BUILD_FROM_SOURCE), if it has one."""
    stage = STAGES.get(f"{target}-wheels", "")
    listed = re.search(r'^ARG BUILD_FROM_SOURCE="([^"]*)"', stage, re.M)
    return set(listed[1].split()) if listed else set()


def test_every_compiled_dependency_installs_on_amd64_and_arm64() -> None:
    """Docker Desktop on Apple silicon builds linux/arm64: a compiled dependency without a
    wheel there falls back to its C source, and the slim base has no compiler. Each such
    dependency must have a wheel for both architectures on the images' Pythons, or be
    compiled in the image's builder stage from an sdist the lock pins by hash."""
    import tomllib

    from packaging.utils import canonicalize_name, parse_wheel_filename

    lock = {canonicalize_name(pkg["name"]): pkg
            for pkg in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    missing = []
    for target in LAB_TARGETS:
        compiled_here = built_from_source(target)
        for python in image_pythons():
            for arch in ARCHES:
                accepted = linux_tags(python, arch)
                for name in sorted(image_requirements(target, python, arch)):
                    wheels = [parse_wheel_filename(w["url"].rsplit("/", 1)[1])[3]
                              for w in lock[name].get("wheels", [])]
                    if any(tag.abi == "none" and tag.platform == "any"
                           for tagset in wheels for tag in tagset):
                        continue  # pure Python
                    if any(tagset & accepted for tagset in wheels):
                        continue
                    if name in compiled_here and "sdist" in lock[name]:
                        sdist_hash = lock[name]["sdist"]["hash"].split(":", 1)[1]
                        assert sdist_hash in (ROOT / "requirements" / f"{target}.txt"
                                              ).read_text(), name
                        continue
                    missing.append(f"{target}: {name} on cp{python[0]}{python[1]} {arch}")
    assert not missing, missing


def test_no_trust_and_one_password_in_force() -> None:
    """The database never trusts a TCP client: the services and the exporter read the
    password in force (POSTGRES_PASSWORD, or the generated one) from the auth volume."""
    pg = SERVICES["postgres"]
    assert "POSTGRES_HOST_AUTH_METHOD" not in pg["environment"]
    assert "trust" not in (ROOT / "postgres" / "entrypoint.sh").read_text().split(
        "unset POSTGRES_HOST_AUTH_METHOD")[1].split("\n")[0]
    assert "postgres-auth:/run/loadlab/postgres" in pg["volumes"]
    auth = COMPOSE["volumes"]["postgres-auth"]["driver_opts"]
    assert auth["type"] == "tmpfs" and "uid=999" in auth["o"]  # in memory, the db's own
    for name in LAB_IMAGE_SERVICES - {"locust-master", "locust-worker"}:
        svc = SERVICES[name]
        assert "postgres-auth:/run/loadlab/postgres:ro" in svc["volumes"], name
        assert svc["environment"]["LOADLAB_DB_PASSWORD_FILE"] == \
            "/run/loadlab/postgres/password", name
    exporter = SERVICES["postgres-exporter"]
    assert "DATA_SOURCE_NAME" not in exporter["environment"]
    assert exporter["environment"]["DATA_SOURCE_PASS_FILE"] == "/run/loadlab/postgres/password"
    assert "postgres-auth:/run/loadlab/postgres:ro" in exporter["volumes"]
    for name in ("locust-master", "locust-worker", "prometheus", "grafana"):
        assert not any("postgres-auth" in v for v in SERVICES[name].get("volumes", [])), name


def _fake_engine(tmp: Path) -> dict[str, str]:
    """A `docker` whose `info` answers once the fake `dockerd` runs; that daemon records
    its PID and waits to be stopped."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(f'#!/bin/sh\n[ "$1" = info ] && [ -e {tmp}/up ]\n')
    (bin_dir / "dockerd").write_text(
        f"#!/bin/sh\necho $$ > {tmp}/pid\ntouch {tmp}/up\nexec sleep 300\n")
    for name in ("docker", "dockerd"):
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOADLAB_DOCKERD_LOG": str(tmp / "log")}


def test_ci_stops_the_engine_it_started(tmp_path: Path) -> None:
    """`.ci/run` starts dockerd when none answers; it must not leave it running (with its
    iptables rules and bridges) when it ends, however it ends."""
    import psutil

    env = _fake_engine(tmp_path)
    for outcome in ("true", "false"):  # the tests passed / failed
        (tmp_path / "up").unlink(missing_ok=True)
        done = subprocess.run(["bash", "-c", f"set -e; . .ci/engine.sh; start_engine; {outcome}"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == (0 if outcome == "true" else 1), done.stderr
        pid = int((tmp_path / "pid").read_text())
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", outcome
    # An engine that already answers is not started, and not stopped.
    (tmp_path / "pid").unlink()
    (tmp_path / "up").touch()
    done = subprocess.run(["bash", "-c", ". .ci/engine.sh; start_engine"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and not (tmp_path / "pid").exists()
