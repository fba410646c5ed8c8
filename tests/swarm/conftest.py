"""A live one-node swarm on this machine's engine, built, deployed once, always torn down.

The swarm is made here (`docker swarm init` on loopback) and left here (`docker swarm
leave --force`, then the `docker_gwbridge` network it leaves behind); an engine that was
already in a swarm is refused, never touched.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.compose_project import engine_problem, registry_answers

from loadlab.launch import free_port
from loadlab.stack import Stack, swarm_state

ROOT = Path(__file__).resolve().parents[2]
LAB_IMAGES = ("fastapi", "flask", "locust")
OFFLINE_SERVICES = ["fastapi", "flask", "locust-master", "locust-worker", "prometheus"]
PORTS = ("FASTAPI_PORT", "FLASK_PORT", "LOCUST_PORT", "LOCUST_MASTER_PORT",
         "PROMETHEUS_PORT", "GRAFANA_PORT", "POSTGRES_PORT")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.swarm)
            item.add_marker(pytest.mark.slow)


@dataclass
class SwarmLab:
    stack: Stack
    ports: dict[str, int]
    deploy_seconds: float

    def url(self, port_name: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_name]}"

    def environ(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.stack.env, "LOADLAB_STACK": self.stack.name, **extra}


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def _refuse(reason: str) -> None:
    if os.environ.get("LOADLAB_REQUIRE_DOCKER") == "1":
        pytest.fail(f"the swarm e2e must run here, but: {reason}", pytrace=False)
    pytest.skip(f"swarm e2e: {reason}")


# Package scope: the stack is down once this package's last test ends, not at the end
# of the whole session (its idle containers would share the cores with every later test).
@pytest.fixture(scope="package")
def swarm_lab() -> Iterator[SwarmLab]:
    problem = engine_problem()
    if problem is not None:
        _refuse(problem)
    state = swarm_state()
    if state != "inactive":
        _refuse(f"this engine is already in a swarm (state {state}); the test makes its own "
                "and never touches one it did not make")
    had_gwbridge = _docker("network", "inspect", "docker_gwbridge").returncode == 0
    tag = f"swarm-{os.getpid()}"
    ports = {name: free_port() for name in PORTS}
    env = {"LOADLAB_TAG": tag, "LOCUST_WEB_PASSWORD": secrets.token_urlsafe(12),
           "POSTGRES_PASSWORD": secrets.token_urlsafe(12),
           "LOCUST_WORKERS": "1", "HEALTHCHECK_INTERVAL": "2s", "SCRAPE_INTERVAL": "2s",
           "FASTAPI_CPUS": "1", "FLASK_CPUS": "0.5", **{k: str(v) for k, v in ports.items()}}
    offline = not registry_answers()
    lab = Stack(name=f"llswarm{os.getpid()}", env=env,
                env_file_list=[str(ROOT / ".offline" / "images.env")] if offline else [])
    inited = False
    try:
        init = _docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        assert init.returncode == 0, init.stderr
        inited = True
        if offline:
            built = subprocess.run([sys.executable, "-m", "loadlab.offline"],
                                   env=lab.environ(), capture_output=True, text=True,
                                   timeout=900, check=False)
            assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
        else:
            built = subprocess.run(["docker", "compose", "--project-directory", str(ROOT),
                                    "build"], env=lab.environ(), capture_output=True,
                                   text=True, timeout=900, check=False)
            assert built.returncode == 0, built.stderr[-2000:]
        seconds = lab.deploy(OFFLINE_SERVICES if offline else None, wait_s=240)
        yield SwarmLab(lab, ports, seconds)
    finally:
        lab.remove()
        left = lab.leftovers()
        _docker("image", "rm", "--force", *[f"loadlab/{name}:{tag}" for name in LAB_IMAGES])
        if inited:
            _docker("swarm", "leave", "--force")
            deadline = time.monotonic() + 30
            while swarm_state() != "inactive" and time.monotonic() < deadline:
                time.sleep(0.5)
            if not had_gwbridge:
                _docker("network", "rm", "docker_gwbridge")
        assert left == {}, f"docker stack rm left {left} behind"
        assert swarm_state() == "inactive"
        if not had_gwbridge:
            assert _docker("network", "inspect", "docker_gwbridge").returncode != 0
