"""``--runtime compose`` says what is missing when it cannot drive the stack, in one line
through the real command line; and its pure helpers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from loadlab.runner.compose import loopback_url, variant_env
from loadlab.serve import ServerConfig


def _tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_compose(path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(
        [sys.executable, "-m", "loadlab", "run", "--runtime", "compose", "--target", "flask",
         "--scenario", "json", "--duration", "2s", "--out", "/nonexistent/never-written"],
        capture_output=True, text=True, env=env, timeout=60, check=False)


def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_no_docker_at_all(tmp_path: Path) -> None:
    assert_one_line(run_compose(str(tmp_path)), "no `docker` command")


def test_docker_without_an_engine(tmp_path: Path) -> None:
    _tool(tmp_path, "docker", 'echo "Cannot connect to the Docker daemon" >&2; exit 1')
    assert_one_line(run_compose(f"{tmp_path}:/usr/bin:/bin"), "no", "engine",
                    "Cannot connect")


def test_only_compose_v1(tmp_path: Path) -> None:
    _tool(tmp_path, "docker", '[ "$1" = info ] && { echo 20.10.24; exit 0; }\n'
                              'echo "docker: unknown command: docker compose" >&2; exit 1')
    _tool(tmp_path, "docker-compose", "echo docker-compose version 1.29.2")
    assert_one_line(run_compose(f"{tmp_path}:/usr/bin:/bin"), "Compose v1", "Compose v2")


def test_variant_env_sets_the_compose_knobs() -> None:
    cfg = ServerConfig(framework="flask", workers=4, worker_class="gthread", threads=8,
                       cpus=0.5)
    assert variant_env(cfg, "0") == {
        "FLASK_CPUS": "0.5", "FLASK_WORKERS": "4", "FLASK_WORKER_CLASS": "gthread",
        "FLASK_THREADS": "8", "FLASK_BACKPRESSURE": "0", "FLASK_CPUSET": "0"}
    granian = ServerConfig(framework="fastapi", worker_class="granian", backpressure=16)
    assert variant_env(granian)["FASTAPI_WORKER_CLASS"] == "granian"
    assert variant_env(granian)["FASTAPI_BACKPRESSURE"] == "16"


@pytest.mark.parametrize("published, url", [
    ("127.0.0.1:8001\n", "http://127.0.0.1:8001"),
    ("0.0.0.0:8002", "http://127.0.0.1:8002"),
    ("192.168.1.20:8003", "http://127.0.0.1:8003"),  # load stays on loopback
    ("[::1]:8004", "http://[::1]:8004"),
])
def test_loopback_url(published: str, url: str) -> None:
    assert loopback_url(published) == url
