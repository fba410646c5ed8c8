"""``loadlab size --runtime compose``: each candidate runs as the compose ``app`` profile's
service with ``cpus:`` from --cpus, in a project and image tag of the test's own, removed
at the end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.compose_project import engine_problem, published_port
from support.runner_cli import loadlab
from support.system_tools import require

from loadlab.runner.compose import app_env
from loadlab.serve import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_BASE = "loadlab/python-base:bookworm"
OFFICIAL_PYTHON = "python:3.12.8-slim-bookworm"


def _image_here(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True,
                          timeout=60, check=False).returncode == 0


def test_the_app_profile_is_told_where_the_app_is() -> None:
    from loadlab.apps.spec import parse

    spec = parse("app:app", str(ROOT / "examples" / "flask_shop"), "wsgi")
    env = app_env(ServerConfig(framework="app", app=spec, cpus=1.5))
    assert env == {"LOADLAB_APP_DIR": str(ROOT / "examples" / "flask_shop"),
                   "LOADLAB_APP": "app:app", "LOADLAB_APP_BASE": "flask"}
    assert app_env(ServerConfig(framework="flask")) == {}


@pytest.mark.docker
@pytest.mark.slow
def test_size_runs_each_candidate_as_the_compose_app_service(tmp_path: Path) -> None:
    require("docker", engine_problem())
    base = OFFICIAL_PYTHON if _image_here(OFFICIAL_PYTHON) else OFFLINE_BASE
    if not _image_here(base):
        pytest.skip(f"no {OFFICIAL_PYTHON} and no {OFFLINE_BASE} (make offline-images "
                    "builds the offline base)")
    project, tag = f"loadlab-size-{os.getpid()}", f"size-{os.getpid()}"
    env = {**os.environ, "COMPOSE_PROJECT_NAME": project, "LOADLAB_TAG": tag,
           "PYTHON_IMAGE": base, "APP_PORT": str(published_port()), "LOADLAB_BIND": "127.0.0.1",
           "HEALTHCHECK_INTERVAL": "1s", "COMPOSE_PROFILES": "app"}
    env.pop("DATABASE_URL", None)
    compose = ["docker", "compose", "--project-directory", str(ROOT)]
    out = tmp_path / "size"
    try:
        built = subprocess.run([*compose, "build", "flask"], env=env, capture_output=True,
                               text=True, timeout=900, check=False)
        assert built.returncode == 0, built.stderr[-2000:]
        done = loadlab(["size", "--runtime", "compose", "--app",
                        f"{ROOT}/examples/flask_shop/app.py:app",
                        "--request", "GET /users/{random:50}/cart", "--cpus", "0.5",
                        "--candidates", "sync:2", "--slo", "p95<1s", "--rounds", "1",
                        "--steps", "0", "--duration", "2s", "--warmup", "1s",
                        "--start-rate", "5", "--max-rate", "10", "--out", str(out)],
                       env, timeout=900)
        assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
        doc = json.loads((out / "size.json").read_text())
        assert doc["runtime"] == "compose" and doc["cpus"] == 0.5
        [cand] = doc["candidates"]
        assert cand["label"] == "sync ×2" and cand["points"]
        for point in cand["points"]:
            summary = json.loads((out / point["results"] / "summary.json").read_text())
            [run] = summary["runs"]
            assert run["status"] == "ok", run.get("error")
            assert summary["manifest"]["runtime"] == "compose"
            assert run["cpus"] == 0.5 and run["workers"] == 2 and run["target"] == "app"
            # the container's own quota, read from its cgroup by the service
            assert run["server"].get("cpu_limit") == pytest.approx(0.5), run["server"]
            assert run["requests"] > 0
        assert '<section id="size">' in (out / "report.html").read_text()
    finally:
        subprocess.run([*compose, "down", "--volumes", "--remove-orphans", "--timeout", "5"],
                       env=env, capture_output=True, timeout=180, check=False)
        subprocess.run(["docker", "image", "rm", "--force", f"loadlab/app:{tag}",
                        f"loadlab/flask:{tag}"], capture_output=True, timeout=120,
                       check=False)
    label = f"label=com.docker.compose.project={project}"
    for cmd in (["docker", "ps", "-aq", "--filter", label],
                ["docker", "volume", "ls", "-q", "--filter", label],
                ["docker", "network", "ls", "-q", "--filter", label],
                ["docker", "images", "-q", f"--filter=reference=loadlab/*:{tag}"]):
        left = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert left.stdout.split() == [], (cmd, left.stdout)
