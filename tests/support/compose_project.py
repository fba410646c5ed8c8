"""Driving a throwaway compose project of the lab: build, up, queries, teardown.

Each test session gets its own project name and free loopback ports, so a lab the user
runs (project ``loadlab``) is never touched.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loadlab.launch import free_port
from support import polling

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_PYTHON = "python:3.12.8-slim-bookworm"
LAB_IMAGES = ("fastapi", "flask", "locust")
# Grafana has no offline image; every other service runs in the e2e.
SERVICES = ("fastapi", "flask", "locust-master", "locust-worker", "prometheus", "postgres",
            "postgres-exporter")
# The compose file's `variants` profile, up only for the test that needs it.
PROFILE_VARIANTS = ("fastapi-gunicorn", "flask-gevent", "fastapi-granian", "flask-granian")
VARIANT_SERVICES = ("fastapi", "flask", *PROFILE_VARIANTS)


# Ports published_port handed out in this test session: each is distinct.
_PUBLISHED: set[int] = set()


def published_port() -> int:
    """A free loopback port for a compose lab to publish, below the kernel's ephemeral range
    and distinct from every other this session handed out.

    Below: Docker gives each `127.0.0.1::9000` side port the next port from the bottom of
    that range, and the kernel gives every outgoing connection one from it, so a fixed port
    picked inside it can be taken before the service that is to publish it is up (`port is
    already allocated`)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    top = min(low, 30000)  # below Swarm's and Kubernetes' node ports (30000-32767) too
    if top - 20000 < 1000:  # an unusual range: take the kernel's choice
        return free_port()
    for port in random.sample(range(20000, top), k=200):
        if port in _PUBLISHED:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PUBLISHED.add(port)
        return port
    raise OSError("no free port in 20000-29999 on 127.0.0.1 after 200 tries")


def engine_problem() -> str | None:
    """Why no engine can be had here, or None."""
    if shutil.which("docker") is None:
        return "no docker CLI (apt-get install docker.io)"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0:
        return f"no Docker engine answers: {info.stderr.strip().splitlines()[-1:]}"
    version = subprocess.run(["docker", "compose", "version"], capture_output=True,
                             text=True, timeout=30, check=False)
    if version.returncode != 0:
        return "no Compose v2 (`docker compose`); .ci/install-compose-v2 installs it"
    return None


def registry_answers() -> bool:
    """Whether the official base image is here or can be pulled (else: offline build)."""
    for cmd in (["docker", "image", "inspect", OFFICIAL_PYTHON],
                ["docker", "pull", "-q", OFFICIAL_PYTHON]):
        if subprocess.run(cmd, capture_output=True, timeout=120, check=False).returncode == 0:
            return True
    return False


def _instant(stamp: str) -> float:
    """Docker's RFC 3339 time (nanoseconds, Z) as seconds since the epoch."""
    found = re.fullmatch(r"([^.]+?)(\.\d+)?(Z|[+-]\d\d:\d\d)", stamp.strip())
    if found is None:
        return float("nan")
    whole, fraction, zone = found.groups()
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + float(fraction or 0)


@dataclass
class Stack:
    project: str = field(default_factory=lambda: f"loadlab-e2e-{os.getpid()}")
    tag: str = field(default_factory=lambda: f"e2e-{os.getpid()}")
    env: dict[str, str] = field(default_factory=dict)
    offline: bool = False
    up_seconds: float = 0.0
    healthy_after: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {name: published_port() for name in (
            "FASTAPI_PORT", "FLASK_PORT", "FASTAPI_GUNICORN_PORT", "FLASK_GEVENT_PORT",
            "FASTAPI_GRANIAN_PORT", "FLASK_GRANIAN_PORT", "LOCUST_PORT", "LOCUST_MASTER_PORT",
            "PROMETHEUS_PORT", "GRAFANA_PORT", "POSTGRES_PORT")}
        self.env = {
            "COMPOSE_PROJECT_NAME": self.project, "LOADLAB_TAG": self.tag,
            # Every compose command sees the variants' services, so `down` removes them too.
            "COMPOSE_PROFILES": "variants",
            "FASTAPI_GUNICORN_CPUS": "0.5", "FLASK_GEVENT_CPUS": "0.5",
            "LOADLAB_BIND": "127.0.0.1", "SCRAPE_INTERVAL": "2s",
            "HEALTHCHECK_INTERVAL": "2s", "LOCUST_WORKERS": "2",
            "FASTAPI_CPUS": "1", "FLASK_CPUS": "0.5", "FLASK_WORKERS": "2",
            "POSTGRES_CPUS": "0.75",
            **{k: str(v) for k, v in self.ports.items()}, **self.env,
        }

    # --- compose -------------------------------------------------------------------------
    def environ(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.env, **extra}

    def compose(self, *args: str, timeout: float = 300, check: bool = True,
                **extra: str) -> subprocess.CompletedProcess[str]:
        env_file = ROOT / ".offline" / "images.env"
        cmd = ["docker", "compose", "--project-directory", str(ROOT), "--env-file",
               str(env_file) if self.offline else "/dev/null"]
        result = subprocess.run([*cmd, *args], capture_output=True, text=True,
                                env=self.environ(**extra), timeout=timeout, check=False)
        if check and result.returncode != 0:
            why = self.health_report() if args[:1] == ("up",) else ""
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{result.stderr}"
                                 f"{why}")
        return result

    def started_to_healthy(self) -> dict[str, float]:
        """Seconds from each container's start to its first passing check, by name."""
        ids = subprocess.run(["docker", "ps", "-aq", "--filter",
                              f"label=com.docker.compose.project={self.project}"],
                             capture_output=True, text=True, timeout=60, check=False).stdout
        found = {}
        for cid in ids.split():
            out = subprocess.run(["docker", "inspect", "--format", "{{json .}}", cid],
                                 capture_output=True, text=True, timeout=60, check=False)
            if out.returncode != 0:
                continue
            doc = json.loads(out.stdout)
            passed = [_instant(c["End"]) for c in (doc["State"].get("Health") or {}).get(
                "Log") or [] if c["ExitCode"] == 0]
            if passed:
                found[doc["Name"].lstrip("/")] = min(passed) - _instant(doc["State"]["StartedAt"])
        return found

    def health_report(self) -> str:
        """Why the project's containers are not healthy: each one's health log (when each
        check ran after the start, its exit code and output) and the log's last lines."""
        ids = subprocess.run(["docker", "ps", "-aq", "--filter",
                              f"label=com.docker.compose.project={self.project}"],
                             capture_output=True, text=True, timeout=60, check=False).stdout
        report = []
        for cid in ids.split():
            out = subprocess.run(["docker", "inspect", "--format", "{{json .}}", cid],
                                 capture_output=True, text=True, timeout=60, check=False)
            if out.returncode != 0:
                continue
            state = json.loads(out.stdout)["State"]
            health = state.get("Health") or {}
            if health.get("Status") in (None, "healthy"):
                continue
            name = json.loads(out.stdout)["Name"].lstrip("/")
            started = _instant(state["StartedAt"])
            lines = [f"{name}: {state['Status']}, health {health.get('Status')}, "
                     f"failing streak {health.get('FailingStreak')}"]
            for check in health.get("Log") or []:
                took = _instant(check["End"]) - _instant(check["Start"])
                lines.append(f"  check at +{_instant(check['Start']) - started:.1f} s "
                             f"({took:.1f} s): exit {check['ExitCode']} "
                             f"{check['Output'].strip()[:200]}")
            logs = subprocess.run(["docker", "logs", "--tail", "15", "--timestamps", cid],
                                  capture_output=True, text=True, timeout=60, check=False)
            lines += [f"  log: {line}" for line in
                      (logs.stdout + logs.stderr).strip().splitlines()]
            report.append("\n".join(lines))
        return "\n" + "\n".join(report) if report else ""

    def build(self) -> None:
        if self.offline:
            # The path `make offline-images` takes: Debian-made base, same Dockerfiles.
            result = subprocess.run([sys.executable, "-m", "loadlab.offline"],
                                    env=self.environ(), capture_output=True, text=True,
                                    timeout=900, check=False)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        else:
            self.compose("build", timeout=900)

    def up(self) -> None:
        started = time.monotonic()
        services = SERVICES if self.offline else (*SERVICES, "grafana")
        self.compose("up", "--detach", "--wait", *services, timeout=300)
        self.up_seconds = time.monotonic() - started
        # Read at once: Docker keeps only a container's last 5 checks.
        self.healthy_after = self.started_to_healthy()

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5",
                     timeout=180, check=False)
        images = [f"loadlab/{name}:{self.tag}" for name in LAB_IMAGES]
        # Services that share an image name each build one labelled with the project
        # (locust-master and locust-worker, the variants): the last build keeps the tag,
        # the others are left untagged. Those go too, by the project's label; newest
        # first, and twice, since an image built on another (the app's) holds its base.
        for _ in range(2):
            built = subprocess.run(["docker", "images", "-aq", "--filter", self._label],
                                   capture_output=True, text=True, timeout=60, check=False)
            subprocess.run(["docker", "image", "rm", "--force", *built.stdout.split(),
                            *images], capture_output=True, timeout=120, check=False)

    @property
    def _label(self) -> str:
        return f"label=com.docker.compose.project={self.project}"

    def leftovers(self) -> dict[str, list[str]]:
        label = self._label
        found = {}
        for kind, cmd in (("containers", ["docker", "ps", "-aq", "--filter", label]),
                          ("networks", ["docker", "network", "ls", "-q", "--filter", label]),
                          ("volumes", ["docker", "volume", "ls", "-q", "--filter", label]),
                          ("images", ["docker", "images", "-q",
                                      f"--filter=reference=loadlab/*:{self.tag}"]),
                          ("untagged images", ["docker", "images", "-aq", "--filter", label])):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            found[kind] = out.stdout.split()
        return {kind: ids for kind, ids in found.items() if ids}

    # --- HTTP ----------------------------------------------------------------------------
    def url(self, port_name: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_name]}"

    def prometheus(self, path: str, **params: str) -> Any:
        url = f"{self.url('PROMETHEUS_PORT')}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                body = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        assert body["status"] == "success", f"{params}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> dict[str, float]:
        """Instant query -> {service label (or '') : value}."""
        result = self.prometheus("/api/v1/query", query=expr)["result"]
        return {r["metric"].get("service", ""): float(r["value"][1]) for r in result}

    def locust(self, path: str, form: dict[str, str] | None = None) -> Any:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        with urllib.request.urlopen(f"{self.url('LOCUST_PORT')}{path}", data=data,
                                    timeout=30) as reply:
            text = reply.read()
        return json.loads(text) if text.strip().startswith(b"{") else text

    def wait_for(self, what: str, check: Any, timeout_s: float = 60) -> Any:
        return polling.wait_for(check, timeout_s, what, every_s=1)


# Board figures only some servers have: the event loop's lag (asyncio), the thread pool.
KIND_SPECIFIC = ("loadlab_event_loop_lag", "loadlab_threadpool")
